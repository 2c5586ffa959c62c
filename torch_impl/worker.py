"""Run one RunSpec on the torch side (mirror: keras_impl/worker.py).

The harness calls these in a worker process of their own; they take and return
only plain dicts and NumPy arrays.
"""
from __future__ import annotations

import inspect
import time

import numpy as np
import torch

import torch_impl
from core import records
from core.data import load
from core.machine import provenance
from core.seeds import derive, epoch_orders
from core.spec import RunSpec
from torch_impl import optim, recipes, seeding, train
from torch_impl.weights import export_weights, import_weights

FRAMEWORK = "torch"


def versions() -> dict:
    return {"torch": torch.__version__, "numpy": np.__version__}


def device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def machine() -> dict:
    """The machine facts of this process (``core.machine.provenance``) and torch's own: the
    ISA level its ATen kernels dispatch at, and its thread pools."""
    return {**provenance(), "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "torch_threads": torch.get_num_threads(), "torch_interop_threads": torch.get_num_interop_threads(),
            "versions": versions()}


def defaults() -> dict:
    """torch's own defaults, read off the optimizer signatures (PORTING.md reports them beside Keras's)."""
    def default(cls, name):
        return inspect.signature(cls.__init__).parameters[name].default

    return {"sgd_lr": default(torch.optim.SGD, "lr"), "adam_lr": default(torch.optim.Adam, "lr"),
            "adam_epsilon": default(torch.optim.Adam, "eps"), "adamw_weight_decay": default(torch.optim.AdamW, "weight_decay"),
            # nn.Linear/Conv2d.reset_parameters: kaiming_uniform_(a=√5) for weights = U(±1/√fan_in), biases U(±1/√fan_in)
            "kernel_initializer": "kaiming_uniform(a=sqrt(5)): U(±1/sqrt(fan_in))",
            "bias_initializer": "U(±1/sqrt(fan_in))"}


def _build(spec: RunSpec) -> torch.nn.Module:
    seeding.seed_everything(derive(spec.seed, "init"))
    # The mirror carries Keras's L2 placement (reported as the penalty), except for `none`.
    l2 = 0.0 if spec.regularization == "none" else spec.l2
    return torch_impl.build_model(spec.model, l2=l2, dtype=getattr(torch, spec.dtype)).to(device())


def initial_weights(spec_dict: dict) -> dict[str, np.ndarray]:
    """torch's own initial weights for this spec (native mode)."""
    return export_weights(_build(RunSpec.from_dict(spec_dict)))


def run(spec_dict: dict, initial: dict[str, np.ndarray] | None = None) -> dict:
    """Train as the spec says. Parity mode: start from ``initial`` (Keras's) with Keras-exact
    optimizers; native mode: torch's initializers and stock optimizers."""
    spec = RunSpec.from_dict(spec_dict)
    exact = spec.mode == "parity"
    if exact and initial is None:
        raise ValueError("parity mode needs Keras's initial weights")
    data = load(spec.dataset)
    dtype, dev = getattr(torch, spec.dtype), device()
    x, x_test = (train.to_tensor(a, spec.model, dtype, dev) for a in (data.x_train, data.x_test))
    y, y_test = (torch.as_tensor(a, device=dev) for a in (data.y_train, data.y_test))
    model = _build(spec)
    if exact:
        import_weights(model, initial)
    initial_norms = records.norms_of(export_weights(model))
    adamw_default = (optim.KERAS_DEFAULTS if exact else optim.TORCH_DEFAULTS)["adamw"]["weight_decay"]
    recipe = recipes.for_optimizer(spec.regularization, model, spec.optimizer, l2=spec.l2, adamw_default=adamw_default)
    optimizer = optim.make_optimizer(model, recipe, spec.optimizer, exact=exact)
    order = epoch_orders(len(x), spec.epochs, spec.seed)
    diverged, history = None, []
    start = time.perf_counter()
    try:
        train.fit(model, optimizer, x, y, batch_size=spec.batch_size, order=order, recipe=recipe, x_test=x_test,
                  y_test=y_test, on_epoch=records.epoch_recorder(spec.model, history, lambda: export_weights(model)))
    except records.Diverged as exc:
        diverged = str(exc)
    wall = time.perf_counter() - start
    steps = len(history) * -(-len(x) // spec.batch_size)
    out = records.summary(spec.model, history, export_weights(model), wall, steps, diverged, initial_norms)
    return {"framework": FRAMEWORK, "defaults": defaults(), "backend": "torch", "versions": versions(), "device": dev,
            "machine": machine(), **out}


class Run:
    """This framework's training run, as ``core.columns`` finds it (interface for the engine)."""

    framework = FRAMEWORK

    def set_threads(self, n: int) -> None:
        seeding.set_threads(n)

    def machine(self) -> dict:
        return machine()

    def initial_weights(self, spec_dict: dict) -> dict:
        return initial_weights(spec_dict)

    def run(self, spec_dict: dict, initial=None) -> dict:
        return run(spec_dict, initial)
