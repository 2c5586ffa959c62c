"""Which tensors Keras regularizes, and by how much — read off the layers themselves."""
from __future__ import annotations

import keras
from keras import ops


def l2_of(regularizer) -> float:
    """λ of an L2 regularizer (0 for none). L1/L1L2 with a non-zero L1 part, or any other
    regularizer, is refused with a ValueError (the porter reports it against the layer)."""
    if regularizer is None:
        return 0.0
    config = regularizer.get_config()
    if float(config.get("l1", 0.0) or 0.0) != 0.0:
        raise ValueError(f"{type(regularizer).__name__} has a non-zero L1 part; only L2 is supported")
    if "l2" not in config or set(config) - {"l1", "l2"}:
        raise ValueError(f"unsupported regularizer {type(regularizer).__name__}; only L2 is supported")
    return float(config["l2"])


def coefficients(model: keras.Model) -> dict[str, float]:
    """Canonical weight name ("layer/kernel", "layer/bias") -> λ, for every regularized tensor."""
    coefs = {}
    for layer in model.layers:
        for attr, weight in (("kernel_regularizer", "kernel"), ("bias_regularizer", "bias")):
            lam = l2_of(getattr(layer, attr, None))
            if lam:
                coefs[f"{layer.name}/{weight}"] = lam
    return coefs


def penalty(model: keras.Model):
    """Σ λ·Σw² over the regularized tensors: what Keras adds to the loss (``sum(model.losses)``)."""
    losses = model.losses
    return ops.sum(ops.stack(losses)) if losses else ops.zeros(())
