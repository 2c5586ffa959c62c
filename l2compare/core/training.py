"""The training run, written once: a template with per-framework hooks.

As AlgoPerf's workload base class and Keras's shared ``Trainer`` do, the steps every run
takes (seed, build, start from given weights, make the optimizer, fit over the caller's
batch order, export, summarize) are written here once; ``keras_impl.worker.Run`` and
``torch_impl.worker.Run`` supply the hooks. The run engine (``run``, ``initial_weights``),
the parity runner (``prepare``, ``train``) and the bench (``timed``) all go through it.

Imports no framework: the hooks do.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Sequence

import numpy as np

from l2compare.core import columns, records
from l2compare.core.data.sets import load
from l2compare.core.seeds import derive, epoch_orders
from l2compare.core.spec import RunSpec


@dataclass
class FitResult:
    """Per-epoch history (loss, data_loss, penalty, accuracy, test_accuracy) and, when
    asked, the canonical weights and optimizer state (``optim.export_state``) after every step."""

    history: list[dict] = field(default_factory=list)
    steps: list[dict[str, np.ndarray]] | None = None
    states: list[dict] | None = None


@dataclass
class Trained:
    """What ``TrainingRun.train`` returns: the trained model, where it started, what fit did."""

    model: Any
    initial: dict[str, np.ndarray]  # canonical weights before the first step
    fit: FitResult
    wall_s: float
    diverged: str | None = None


class TrainingRun(ABC):
    """One framework's training run. Subclasses implement the hooks; the template is shared."""

    framework: str  # the vocabulary of its regularization: "keras" (configs) or "torch" (recipes)

    # ------------------------------------------------------------ hooks: facts of this process

    @abstractmethod
    def versions(self) -> dict:
        """Library versions that decide the numbers."""

    @abstractmethod
    def device(self) -> str:
        """Where the model trains: "cpu", "gpu"/"cuda"."""

    @abstractmethod
    def machine(self) -> dict:
        """``l2compare.core.machine.provenance()`` plus the framework's own dispatch and thread pools."""

    @abstractmethod
    def defaults(self) -> dict:
        """The framework's own defaults, read off live objects (PORTING.md reports them)."""

    @abstractmethod
    def set_threads(self, n: int) -> None:
        """Fix the framework's thread pools before its first op."""

    # ------------------------------------------------------------ hooks: training

    @abstractmethod
    def seed(self, seed: int) -> None:
        """Seed everything the initializers draw from."""

    @abstractmethod
    def precision(self, dtype: str) -> ContextManager:
        """A context in which models and optimizers are created in ``dtype``."""

    @abstractmethod
    def build(self, spec: RunSpec, l2: float | None = None):
        """The spec's model; λ on the tensors Keras regularizes (``l2``; None: the λ the spec's
        regularization puts on the model, ``recipes.model_l2``)."""

    @abstractmethod
    def make_optimizer(self, spec: RunSpec, model, *, stock: bool | None = None):
        """The optimizer for the spec's regularization. ``stock`` (torch only; default: native
        mode) picks torch.optim's own classes instead of the Keras-exact ones."""

    @abstractmethod
    def inputs(self, x: np.ndarray, model_name: str, dtype: str):
        """NumPy images (N, 28, 28, 1) as the model's input, on its device."""

    @abstractmethod
    def labels(self, y: np.ndarray):
        """NumPy labels as the framework's fit takes them."""

    @abstractmethod
    def fit(self, model, optimizer, x, y, *, batch_size: int, order: Sequence[np.ndarray], x_test=None,
            y_test=None, capture_steps: bool = False, on_epoch: Callable[[int, dict], None] | None = None) -> FitResult:
        """Train over ``order`` (one permutation per epoch), Keras's ``fit`` semantics."""

    @abstractmethod
    def export_weights(self, model) -> dict[str, np.ndarray]:
        """Canonical weights (Keras names and layout, NumPy)."""

    @abstractmethod
    def import_weights(self, model, weights: dict[str, np.ndarray]) -> None:
        """Assign canonical weights."""

    # ------------------------------------------------------------ the template

    def prepare(self, spec: RunSpec, initial: dict[str, np.ndarray] | None = None, *, l2: float | None = None,
                adapt: Callable[[Any], None] | None = None, stock: bool | None = None):
        """(model, optimizer): seeded build, ``adapt(model)`` (the parity runner's deliberate
        mistakes), the ``initial`` weights if given, then the optimizer. Call inside ``precision``."""
        self.seed(derive(spec.seed, "init"))
        model = self.build(spec, l2)
        if adapt is not None:
            adapt(model)
        if initial is not None:
            self.import_weights(model, initial)
        return model, self.make_optimizer(spec, model, stock=stock)

    def train(self, spec: RunSpec, x: np.ndarray, y: np.ndarray, order: Sequence[np.ndarray], *,
              initial: dict[str, np.ndarray] | None = None, x_test: np.ndarray | None = None,
              y_test: np.ndarray | None = None, capture_steps: bool = False, history: list[dict] | None = None,
              **prepare) -> Trained:
        """Prepare and fit on NumPy data. With ``history``, every epoch's row is appended to it with
        the weights' norms (``records.epoch_recorder``), and a non-finite loss ends the run early."""
        with self.precision(spec.dtype):
            model, optimizer = self.prepare(spec, initial, **prepare)
            start_weights = self.export_weights(model)
            xs, ys = self.inputs(x, spec.model, spec.dtype), self.labels(y)
            test = {}
            if x_test is not None:
                test = dict(x_test=self.inputs(x_test, spec.model, spec.dtype), y_test=self.labels(y_test))
            on_epoch = None
            if history is not None:
                on_epoch = records.epoch_recorder(spec.model, history, lambda: self.export_weights(model))
            result, diverged = FitResult(), None
            start = time.perf_counter()
            try:
                result = self.fit(model, optimizer, xs, ys, batch_size=spec.batch_size, order=order,
                                  capture_steps=capture_steps, on_epoch=on_epoch, **test)
            except records.Diverged as exc:
                diverged = str(exc)
            wall = time.perf_counter() - start
        return Trained(model, start_weights, result, wall, diverged)

    def initial_weights(self, spec_dict: dict) -> dict[str, np.ndarray]:
        """This framework's initial weights for the spec (what parity mode starts torch from)."""
        spec = RunSpec.from_dict(spec_dict)
        with self.precision(spec.dtype):
            self.seed(derive(spec.seed, "init"))
            return self.export_weights(self.build(spec))

    def run(self, spec_dict: dict, initial: dict[str, np.ndarray] | None = None) -> dict:
        """The run engine's job: train as the spec says on its data set -> the worker's output.

        Parity mode starts every column but ``columns.PARITY_SOURCE`` (Keras on TensorFlow) from
        ``initial``, that column's weights (a torch column with Keras-exact optimizers); native mode,
        and the source itself, start from the column's own initializers.
        """
        spec = RunSpec.from_dict(spec_dict)
        if spec.mode != "parity" or spec.framework == columns.PARITY_SOURCE:
            initial = None
        elif initial is None:
            raise ValueError(f"parity mode needs the {columns.PARITY_SOURCE} column's initial weights")
        data = load(spec.dataset)
        history: list[dict] = []
        trained = self.train(spec, data.x_train, data.y_train, epoch_orders(len(data.x_train), spec.epochs, spec.seed),
                             initial=initial, x_test=data.x_test, y_test=data.y_test, history=history)
        steps = len(history) * -(-len(data.x_train) // spec.batch_size)
        out = records.summary(spec.model, history, self.export_weights(trained.model), trained.wall_s, steps, trained.diverged,
                              records.norms_of(trained.initial))
        return {"framework": spec.framework, "defaults": self.defaults(), "backend": self.backend(),
                "versions": self.versions(), "device": self.device(), "machine": self.machine(), **out}

    @abstractmethod
    def backend(self) -> str:
        """The backend that ran it (Keras's ``keras.backend.backend()``; "torch" for torch)."""

    # ------------------------------------------------------------ the bench (l2compare.core.bench_loop)

    @abstractmethod
    def minimal_loop(self, model_name: str, x: np.ndarray, y: np.ndarray, order: Sequence[np.ndarray],
                     warm_order: Sequence[np.ndarray], batch_size: int) -> float:
        """Seconds of what a user would write by hand (the article's model, Adam, its L2) over
        ``order``, after one untimed epoch over ``warm_order`` on the same fresh model."""

    def timed(self, spec: RunSpec, x: np.ndarray, y: np.ndarray, order: Sequence[np.ndarray],
              warm_order: Sequence[np.ndarray]) -> float:
        """Seconds of the suite's loop over ``order``, after one untimed epoch (``warm_order``) on
        the same fresh model: tracing, caches and allocators warm, in both frameworks alike."""
        with self.precision(spec.dtype):
            model, optimizer = self.prepare(spec)
            xs, ys = self.inputs(x, spec.model, spec.dtype), self.labels(y)
            self.fit(model, optimizer, xs, ys, batch_size=spec.batch_size, order=warm_order)
            start = time.perf_counter()
            self.fit(model, optimizer, xs, ys, batch_size=spec.batch_size, order=order)
            return time.perf_counter() - start

