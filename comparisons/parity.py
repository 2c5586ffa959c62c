"""The parity runner: is a torch recipe the same computation as a Keras configuration?

Both sides start from Keras's initial weights (moved as canonical weights), see the
same batches in the same order, and train for the same steps; torch uses the
Keras-exact optimizers unless the case asks for a stock one. We record the
per-step max |Δw| of every tensor and the difference of the reported losses.

Entry point: ``run(ParityCase(...)) -> ParityResult``. This module imports both
frameworks (in-process), so the harness runs it in a worker, never in its parent.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field

import numpy as np

from comparisons.seeds import derive, epoch_orders
from comparisons.spec import OptimizerSpec, SpecError, _choice

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


# max |Δw| at or below this is "exact" (the same computation up to rounding); above
# CLOSE it is "wrong" (a different computation); in between, "close".
EXACT = {"float64": 1e-12, "float32": 1e-5}
CLOSE = 1e-3


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
        return verdict(self.worst, self.case.dtype)

    def describe(self) -> str:
        name, step, diff = self.worst_tensor()
        return (f"{self.case.keras_config}/{self.case.optimizer.label} vs {self.case.recipe} ({self.case.dtype}): "
                f"max |Δw| = {diff:.3g} in {name} at step {step}/{self.steps}; "
                f"loss |Δ| = {self.loss_diff['loss']:.3g}")


def verdict(worst: float, dtype: str) -> str:
    if not np.isfinite(worst):
        return "wrong"
    return "exact" if worst <= EXACT[dtype] else "close" if worst <= CLOSE else "wrong"


def parity_data(n_samples: int, dataset: str = "article"):
    """The first ``n_samples`` training images of ``dataset``."""
    from comparisons.data import load

    data = load(dataset)
    return data.x_train[:n_samples], data.y_train[:n_samples]


def _keras_side(case: ParityCase) -> ParityCase:
    """The case with its torch-only fields neutral: cases that share this share a Keras run."""
    return dataclasses.replace(case, recipe="penalty", torch_optimizer="keras", torch_epsilon=None,
                               torch_l2_scale=1.0, flatten="keras")


@functools.lru_cache(maxsize=8)
def _keras_trajectory(keras_case: ParityCase):
    """Keras's initial weights and per-step trajectory, computed once for all torch recipes
    compared against it (a Keras run costs ~10× a torch one here). Read-only for callers."""
    x, y = parity_data(keras_case.n_samples, keras_case.dataset)
    order = epoch_orders(len(x), keras_case.epochs, keras_case.seed)
    return _run_keras(keras_case, x, y, order)


def _run_keras(case: ParityCase, x, y, order):
    import keras_impl
    from keras_impl import optim, recipes, seeding, train
    from keras_impl.weights import export_weights

    seeding.seed_everything(derive(case.seed, "init"))
    with train.floatx(case.dtype):
        model = keras_impl.build_model(case.model, l2=recipes.model_l2(case.keras_config, case.l2), dtype=case.dtype)
        initial = export_weights(model)
        train.compile_model(model, optim.make_optimizer(case.optimizer, case.keras_config, model))
        result = train.fit(model, train.to_array(x, case.model, case.dtype), y, batch_size=case.batch_size,
                           order=order, capture_steps=True)
    return initial, result


def _run_torch(case: ParityCase, initial, x, y, order):
    import torch

    import torch_impl
    from torch_impl import optim, recipes, train
    from torch_impl.weights import import_weights

    dtype = getattr(torch, case.dtype)
    # The mirror carries the L2 coefficients of the Keras model (none under `wd` or `none`).
    model_l2 = case.l2 * case.torch_l2_scale if case.keras_config == "l2" else 0.0
    model = torch_impl.build_model(case.model, l2=model_l2, dtype=dtype)
    if case.flatten == "torch":
        model.flatten = torch.nn.Flatten()  # the mistake: torch's (C, H, W) order
    import_weights(model, initial)
    exact = case.torch_optimizer == "keras"
    recipe = recipes.for_optimizer(case.recipe, model, case.optimizer, l2=case.l2 * case.torch_l2_scale,
                                   adamw_default=optim.KERAS_DEFAULTS["adamw"]["weight_decay"])
    spec = case.optimizer
    if not exact:
        # The stock torch class with Keras's hyperparameters: only ε stays torch's.
        spec = dataclasses.replace(spec, lr=spec.lr or optim.KERAS_DEFAULTS[spec.name]["lr"],
                                   epsilon=case.torch_epsilon)
    optimizer = optim.make_optimizer(model, recipe, spec, exact=exact)
    return train.fit(model, optimizer, train.to_tensor(x, case.model, dtype), torch.as_tensor(y),
                     batch_size=case.batch_size, order=order, recipe=recipe, capture_steps=True)


def run(case: ParityCase) -> ParityResult:
    """Train both sides for ``case.epochs`` epochs and compare them after every step."""
    x, y = parity_data(case.n_samples, case.dataset)
    order = epoch_orders(len(x), case.epochs, case.seed)
    initial, keras_result = _keras_trajectory(_keras_side(case))
    torch_result = _run_torch(case, initial, x, y, order)
    tensors = list(initial)
    max_dw = np.array([[np.abs(k[name] - t[name]).max() for name in tensors]
                       for k, t in zip(keras_result.steps, torch_result.steps)], dtype=np.float64)
    loss_diff = {key: max(abs(a[key] - b[key]) for a, b in zip(keras_result.history, torch_result.history))
                 for key in ("loss", "data_loss", "penalty")}
    return ParityResult(case, tensors, max_dw, loss_diff,
                        {"keras": keras_result.history, "torch": torch_result.history})
