"""Parity cases: one Keras configuration against one torch recipe, and the presets they use."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from l2compare.core import columns
from l2compare.core.spec import OptimizerSpec, SpecError, choice

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


def keras_columns() -> tuple[str, ...]:
    """The framework columns that run Keras (on any backend), registry order."""
    return tuple(c.name for c in columns.all_columns() if c.framework == "keras")


def preset_optimizer(label: str, dtype: str, **changes) -> OptimizerSpec:
    """The preset optimizer ``label`` (sgd, momentum, adam, adamw) for ``dtype``, with changes."""
    return dataclasses.replace(PRESETS[dtype]["optimizers"][label], **changes)

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
    # The Keras side's framework column: Keras on TensorFlow (the reference), or on another backend,
    # started from TensorFlow's initial weights (``columns.PARITY_SOURCE``).
    keras_column: str = "keras"

    def __post_init__(self):
        choice("keras_column", self.keras_column, keras_columns())
        choice("torch_optimizer", self.torch_optimizer, ("keras", "torch"))
        choice("flatten", self.flatten, ("keras", "torch"))
        if self.steps < 1 or self.n_samples < 1:
            raise SpecError("steps and n_samples must be >= 1")

    @property
    def epochs(self) -> int:
        return math.ceil(self.steps / math.ceil(self.n_samples / self.batch_size))

def parity_data(n_samples: int, dataset: str = "article"):
    """The first ``n_samples`` training images of ``dataset``."""
    from l2compare.core.data.sets import load

    data = load(dataset)
    return data.x_train[:n_samples], data.y_train[:n_samples]


def keras_side(case: ParityCase) -> ParityCase:
    """The case with its torch-only fields neutral: cases that share this share a Keras run."""
    return dataclasses.replace(case, recipe="penalty", torch_optimizer="keras", torch_epsilon=None,
                               torch_l2_scale=1.0, flatten="keras")

