"""Canonical weights: an ordered {"layer/kernel" | "layer/bias": ndarray} in Keras's own layout.

This is the one format in which weights cross between frameworks. Keras's layout
needs no conversion here; ``torch_impl/weights.py`` converts to and from it.
"""
from __future__ import annotations

import keras
import numpy as np


def named_variables(model: keras.Model):
    """(canonical name, variable) for every weight of ``model``, in layer order. A nested model's
    weights are named by path ("base/conv1/kernel"); a shared layer's, once."""
    seen: set = set()
    yield from _named(model, "", seen)


def _named(model: keras.Model, prefix: str, seen: set):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _named(layer, f"{prefix}{layer.name}/", seen)
            continue
        for var in layer.weights:
            if id(var) not in seen:
                seen.add(id(var))
                yield f"{prefix}{layer.name}/{var.name}", var


def export_weights(model: keras.Model) -> dict[str, np.ndarray]:
    """Copies of every weight, keyed by canonical name, in Keras layout."""
    # convert_to_numpy: every backend's tensors (a torch-backend variable needs detaching first).
    return {name: np.array(keras.ops.convert_to_numpy(var)) for name, var in named_variables(model)}


def import_weights(model: keras.Model, weights: dict[str, np.ndarray]) -> None:
    """Assign canonical weights; every tensor must be present with the right shape, and no extra."""
    variables = dict(named_variables(model))
    missing = sorted(set(variables) - set(weights))
    extra = sorted(set(weights) - set(variables))
    if missing or extra:
        raise ValueError(f"weight names differ: missing {missing}, unexpected {extra}")
    for name, var in variables.items():
        value = np.asarray(weights[name])
        if tuple(value.shape) != tuple(var.shape):
            raise ValueError(f"shape mismatch for {name}: got {value.shape}, model has {tuple(var.shape)}")
        var.assign(value.astype(var.dtype))
