"""The source article's three models, written in Keras exactly as the article has them.

Layer names are fixed (not Keras's auto-numbering) so that weights can be matched
by name with the PyTorch mirror in ``torch_impl/models.py``: ``hidden`` is
``torch_impl``'s ``hidden`` and so on.
"""
from __future__ import annotations

import keras
from keras import layers, regularizers

from l2compare.core.names import MODELS


def _l2(l2: float | None):
    # λ = 0 or None is the article's baseline: the same model, no regularizer at all
    # (not an L2(0) object, so that model.losses is empty as in the article).
    return regularizers.L2(l2) if l2 else None


def build_model(name: str, l2: float | None = 0.01, dtype: str = "float32") -> keras.Model:
    """Build the article's ``name`` model with L2 strength ``l2`` (λ) where the article puts it.

    ``mlp``: Dense(128, relu, kernel L2) → Dense(10, softmax).
    ``mlp_bias``: the same, with kernel and bias L2 on the first Dense and bias L2 on the output.
    ``cnn``: Conv2D(32) → MaxPool → Conv2D(64) → MaxPool → Flatten → Dense(10, softmax),
    kernel L2 on both convolutions.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; allowed: {', '.join(MODELS)}")
    reg = _l2(l2)
    if name == "mlp":
        stack = [
            keras.Input(shape=(784,), dtype=dtype, name="x"),
            layers.Dense(128, activation="relu", kernel_regularizer=reg, name="hidden", dtype=dtype),
            layers.Dense(10, activation="softmax", name="out", dtype=dtype),
        ]
    elif name == "mlp_bias":
        stack = [
            keras.Input(shape=(784,), dtype=dtype, name="x"),
            layers.Dense(128, activation="relu", kernel_regularizer=reg, bias_regularizer=reg,
                         name="hidden", dtype=dtype),
            layers.Dense(10, activation="softmax", bias_regularizer=reg, name="out", dtype=dtype),
        ]
    else:  # cnn, channels-last: (N, 28, 28, 1)
        stack = [
            keras.Input(shape=(28, 28, 1), dtype=dtype, name="x"),
            layers.Conv2D(32, (3, 3), activation="relu", kernel_regularizer=reg, name="conv1", dtype=dtype),
            layers.MaxPooling2D((2, 2), name="pool1", dtype=dtype),
            layers.Conv2D(64, (3, 3), activation="relu", kernel_regularizer=reg, name="conv2", dtype=dtype),
            layers.MaxPooling2D((2, 2), name="pool2", dtype=dtype),
            layers.Flatten(name="flatten", dtype=dtype),
            layers.Dense(10, activation="softmax", name="out", dtype=dtype),
        ]
    return keras.Sequential(stack, name=name)
