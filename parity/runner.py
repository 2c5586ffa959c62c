"""The parity runner: is a torch recipe the same computation as a Keras configuration?

Both sides start from Keras's initial weights (moved as canonical weights), see the
same batches in the same order, and train for the same steps; torch uses the
Keras-exact optimizers unless the case asks for a stock one. We record the
per-step max |Δw| of every tensor and the difference of the reported losses.
float64 is judged on that trajectory. float32 is judged one step at a time from
Keras's states (``parity.onestep``): a float32 trajectory parts wherever a
decision ties within rounding, differently on every CPU; its drift is recorded
beside torch's own drift from a 1-ulp nudged start (the envelope).

Entry point: ``run(ParityCase(...)) -> ParityResult``. This module imports both
frameworks (in-process), so the harness runs it in a worker, never in its parent.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field

import numpy as np

from core.seeds import derive, epoch_orders
from core.spec import OptimizerSpec, SpecError, _choice

# Hyperparameters per dtype. float32: the article's setting (λ = 0.01, Keras's defaults).
# float64: powers of two, exact in float32, because TensorFlow casts Python-float
# hyperparameters through float32 (a float64 port would otherwise differ by that rounding).
ADAM64 = dict(beta_1=0.875, beta_2=1 - 2**-10, epsilon=2**-20)
PRESETS = {
    "float32": {
        "l2": 0.01, "weight_decay": 0.004,
        "optimizers": {"sgd": OptimizerSpec("sgd", lr=0.01), "momentum": OptimizerSpec("sgd", lr=0.01, momentum=0.9),
                       "adam": OptimizerSpec("adam"), "adamw": OptimizerSpec("adamw", weight_decay=0.004)},
    },
    "float64": {
        "l2": 2**-7, "weight_decay": 2**-4,
        "optimizers": {"sgd": OptimizerSpec("sgd", lr=2**-5), "momentum": OptimizerSpec("sgd", lr=2**-5, momentum=0.875),
                       "adam": OptimizerSpec("adam", lr=2**-10, **ADAM64),
                       "adamw": OptimizerSpec("adamw", lr=2**-10, weight_decay=2**-4, **ADAM64)},
    },
}


def preset_optimizer(label: str, dtype: str, **changes) -> OptimizerSpec:
    """The preset optimizer ``label`` (sgd, momentum, adam, adamw) for ``dtype``, with changes."""
    return dataclasses.replace(PRESETS[dtype]["optimizers"][label], **changes)


# float64: the trajectory decides. max |Δw| at or below EXACT_FLOAT64 over every step is "exact"
# (the same computation up to rounding); above CLOSE it is "wrong"; in between, "close".
EXACT_FLOAT64 = 1e-12
CLOSE = 1e-3
# float32: teacher-forced one step at a time (parity.onestep). "exact" when, at every step and
# in every tensor and optimizer slot, the cross-framework difference is within the two frameworks'
# own float32 rounding of that step (torch floor + keras floor) plus SLACK, which covers the float64
# disagreement of two exact recipes (measured ≤ 1e-14 of max |w|; the smallest mistake tested, λ off
# by 1%, is 2e-6). Otherwise "close" when the median step differs by at most CLOSE_STEP, "wrong" above.
SLACK = 1e-9
CLOSE_STEP = 1e-4
# A step whose cross-framework difference exceeds OUTLIER (about 16 float32 ulps of max |w|) is an
# outlier; records say whether a decision tie explains it.
OUTLIER = 1e-6


@dataclass(frozen=True)
class ParityCase:
    """One Keras configuration against one torch recipe, from identical weights and batches.

    ``torch_optimizer``: ``keras`` (Keras-exact arithmetic) or ``torch`` (the stock torch
    class with the same hyperparameters; its ε is ``torch_epsilon``, torch's 1e-8 if None).
    ``torch_l2_scale`` scales torch's λ (0.5 is the "λ instead of 2λ" mistake);
    ``flatten="torch"`` drops the Flatten permutation (the silent layout mistake).
    """

    model: str = "mlp"
    keras_config: str = "l2"
    recipe: str = "penalty"
    optimizer: OptimizerSpec = field(default_factory=lambda: OptimizerSpec("sgd", lr=0.01))
    l2: float = 0.01
    dtype: str = "float32"
    steps: int = 52
    batch_size: int = 32
    n_samples: int = 100
    # The article's random data: no exactly-zero pixels. On digits, blank backgrounds put
    # conv pre-activations exactly at their bias, near ReLU's kink, where float32 rounding
    # differences flip units on and off (see test_parity.py).
    dataset: str = "article"
    seed: int = 0
    torch_optimizer: str = "keras"
    torch_epsilon: float | None = None
    torch_l2_scale: float = 1.0
    flatten: str = "keras"

    def __post_init__(self):
        _choice("torch_optimizer", self.torch_optimizer, ("keras", "torch"))
        _choice("flatten", self.flatten, ("keras", "torch"))
        if self.steps < 1 or self.n_samples < 1:
            raise SpecError("steps and n_samples must be >= 1")

    @property
    def epochs(self) -> int:
        return math.ceil(self.steps / math.ceil(self.n_samples / self.batch_size))


@dataclass
class ParityResult:
    case: ParityCase
    tensors: list[str]
    max_dw: np.ndarray  # (steps, tensors): max |w_keras − w_torch| after each step
    loss_diff: dict[str, float]  # history key -> max over epochs of |Δ|
    history: dict[str, list[dict]]
    onestep: "onestep.OneStep | None" = None  # float32 only: teacher-forced one-step parity
    envelope: np.ndarray | None = None  # float32 only: (steps, tensors) torch vs torch from a 1-ulp nudged start

    @property
    def steps(self) -> int:
        return self.max_dw.shape[0]

    @property
    def worst(self) -> float:
        """Max |Δw| over all steps and tensors."""
        return float(self.max_dw.max())

    def worst_tensor(self) -> tuple[str, int, float]:
        """(tensor, step, |Δ|) of the largest difference, for failure messages."""
        step, col = np.unravel_index(int(self.max_dw.argmax()), self.max_dw.shape)
        return self.tensors[col], int(step) + 1, float(self.max_dw[step, col])

    @property
    def verdict(self) -> str:
        if self.onestep is None:
            return trajectory_verdict(self.worst)
        return onestep_verdict(self.onestep)

    def describe(self) -> str:
        name, step, diff = self.worst_tensor()
        text = (f"{self.case.keras_config}/{self.case.optimizer.label} vs {self.case.recipe} ({self.case.dtype}): "
                f"{self.verdict}; trajectory max |Δw| = {diff:.3g} in {name} at step {step}/{self.steps}")
        if self.envelope is not None:
            text += f" (torch's own 1-ulp envelope {self.envelope.max():.3g})"
        if self.onestep is not None:
            text += "; one step: " + self.onestep.describe(SLACK)
        return text + f"; loss |Δ| = {self.loss_diff['loss']:.3g}"


def trajectory_verdict(worst: float) -> str:
    """float64: max |Δw| over the trajectory."""
    if not np.isfinite(worst):
        return "wrong"
    return "exact" if worst <= EXACT_FLOAT64 else "close" if worst <= CLOSE else "wrong"


def onestep_verdict(one) -> str:
    """float32: every step within the frameworks' own rounding, or how far the median step is off."""
    if not np.isfinite(one.cross).all():
        return "wrong"
    if one.excess(SLACK).max() <= 0:
        return "exact"
    return "close" if float(np.median(one.cross.max(1))) <= CLOSE_STEP else "wrong"


def parity_data(n_samples: int, dataset: str = "article"):
    """The first ``n_samples`` training images of ``dataset``."""
    from core.data import load

    data = load(dataset)
    return data.x_train[:n_samples], data.y_train[:n_samples]


def keras_side(case: ParityCase) -> ParityCase:
    """The case with its torch-only fields neutral: cases that share this share a Keras run."""
    return dataclasses.replace(case, recipe="penalty", torch_optimizer="keras", torch_epsilon=None,
                               torch_l2_scale=1.0, flatten="keras")


@dataclass
class KerasTrajectory:
    """Keras's initial weights, and its weights and optimizer state after every step (canonical)."""

    initial: dict[str, np.ndarray]
    steps: list[dict[str, np.ndarray]]
    states: list[dict]
    history: list[dict]
    order: list[np.ndarray]  # the batch order: one permutation per epoch


@functools.lru_cache(maxsize=8)
def keras_trajectory(keras_case: ParityCase) -> KerasTrajectory:
    """Computed once for all torch recipes compared against it (a Keras run costs ~10× a torch
    one here). Read-only for callers."""
    import keras_impl
    from keras_impl import optim, recipes, seeding, train
    from keras_impl.weights import export_weights

    x, y = parity_data(keras_case.n_samples, keras_case.dataset)
    order = epoch_orders(len(x), keras_case.epochs, keras_case.seed)
    seeding.seed_everything(derive(keras_case.seed, "init"))
    with train.floatx(keras_case.dtype):
        model = keras_impl.build_model(keras_case.model, l2=recipes.model_l2(keras_case.keras_config, keras_case.l2),
                                       dtype=keras_case.dtype)
        initial = export_weights(model)
        train.compile_model(model, optim.make_optimizer(keras_case.optimizer, keras_case.keras_config, model))
        result = train.fit(model, train.to_array(x, keras_case.model, keras_case.dtype), y,
                           batch_size=keras_case.batch_size, order=order, capture_steps=True)
    return KerasTrajectory(initial, result.steps, result.states, result.history, order)


def torch_setup(case: ParityCase, initial: dict[str, np.ndarray], dtype: str):
    """The case's torch side in ``dtype``: (model with the ``initial`` canonical weights, optimizer, recipe)."""
    import torch

    import torch_impl
    from torch_impl import optim, recipes
    from torch_impl.weights import import_weights

    # The λ Keras uses: its L2 casts the Python float to the weights' dtype through float32 on the
    # TensorFlow backend (ops.cast), so a float64 Keras model has λ rounded to float32.
    lam = float(np.float32(case.l2)) * case.torch_l2_scale
    # The mirror carries the L2 coefficients of the Keras model (none under `wd` or `none`).
    model_l2 = lam if case.keras_config == "l2" else 0.0
    model = torch_impl.build_model(case.model, l2=model_l2, dtype=getattr(torch, dtype))
    if case.flatten == "torch":
        model.flatten = torch.nn.Flatten()  # the mistake: torch's (C, H, W) order
    import_weights(model, initial)
    exact = case.torch_optimizer == "keras"
    recipe = recipes.for_optimizer(case.recipe, model, case.optimizer, l2=lam,
                                   adamw_default=optim.KERAS_DEFAULTS["adamw"]["weight_decay"])
    spec = case.optimizer
    if not exact:
        # The stock torch class with Keras's hyperparameters: only ε stays torch's. Momentum as
        # both frameworks' float32 arithmetic and TensorFlow's float64 cast see it (0.9 -> 0.89999998),
        # so that a float64 step of the same computation is that computation without float32 rounding.
        spec = dataclasses.replace(spec, lr=spec.lr or optim.KERAS_DEFAULTS[spec.name]["lr"],
                                   epsilon=case.torch_epsilon, momentum=float(np.float32(spec.momentum)))
    return model, optim.make_optimizer(model, recipe, spec, exact=exact), recipe


def _run_torch(case: ParityCase, initial, x, y, order):
    import torch

    from torch_impl import train

    model, optimizer, recipe = torch_setup(case, initial, case.dtype)
    return train.fit(model, optimizer, train.to_tensor(x, case.model, getattr(torch, case.dtype)), torch.as_tensor(y),
                     batch_size=case.batch_size, order=order, recipe=recipe, capture_steps=True)


def run(case: ParityCase) -> ParityResult:
    """Train both sides for ``case.epochs`` epochs and compare them after every step; in float32,
    also one step at a time from Keras's states (``parity.onestep``) and against torch's own
    1-ulp envelope."""
    from parity import onestep

    x, y = parity_data(case.n_samples, case.dataset)
    traj = keras_trajectory(keras_side(case))
    torch_result = _run_torch(case, traj.initial, x, y, traj.order)
    tensors = list(traj.initial)
    max_dw = _max_dw(traj.steps, torch_result.steps, tensors)
    loss_diff = {key: max(abs(a[key] - b[key]) for a, b in zip(traj.history, torch_result.history))
                 for key in ("loss", "data_loss", "penalty")}
    one, envelope = None, None
    if case.dtype == "float32":
        one = onestep.run(case, traj, x, y)
        nudged = _run_torch(case, _one_ulp_up(traj.initial), x, y, traj.order)
        envelope = _max_dw(torch_result.steps, nudged.steps, tensors)
    return ParityResult(case, tensors, max_dw, loss_diff, {"keras": traj.history, "torch": torch_result.history},
                        onestep=one, envelope=envelope)


def _max_dw(a: list[dict], b: list[dict], tensors: list[str]) -> np.ndarray:
    """(steps, tensors): max |a − b| after each step."""
    return np.array([[np.abs(sa[n] - sb[n]).max() for n in tensors] for sa, sb in zip(a, b)], dtype=np.float64)


def _one_ulp_up(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every initial weight moved by one unit in the last place: the smallest change of the start."""
    return {n: np.nextafter(w, np.array(np.inf, dtype=w.dtype)) for n, w in weights.items()}
