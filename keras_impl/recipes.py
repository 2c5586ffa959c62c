"""The Keras configurations being ported (mirror: torch_impl/recipes.py).

* ``l2``   — layer regularizers ``kernel_regularizer=l2(λ)`` (and bias ones) where
  the model puts them: Keras adds λ·Σw² to the loss;
* ``wd``   — the optimizer's ``weight_decay=`` (decoupled, every trainable
  variable unless excluded with ``exclude_from_weight_decay``);
* ``none`` — neither.
"""
from __future__ import annotations

from l2compare.core.names import KERAS_CONFIGS


def model_l2(regularization: str, l2: float) -> float:
    """λ for the layer regularizers: only the ``l2`` config puts any on the model."""
    if regularization not in KERAS_CONFIGS:
        raise ValueError(f"unknown Keras config {regularization!r}; allowed: {', '.join(KERAS_CONFIGS)}")
    return l2 if regularization == "l2" else 0.0
