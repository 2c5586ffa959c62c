"""Training with Keras's own ``model.fit`` over the caller's batch order (mirror: torch_impl/train.py).

``fit`` is called once per epoch on that epoch's permutation with ``shuffle=False``,
so that Keras sees exactly the batches the harness chose (partial last batch kept)
while everything else — loss, penalty, optimizer, history — is Keras's own.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable, Sequence

import keras
import numpy as np

from keras_impl.weights import export_weights


@dataclass
class FitResult:
    """Per-epoch history (loss, data_loss, penalty, accuracy, test_accuracy) and, when
    asked, the canonical weights after every step."""

    history: list[dict] = field(default_factory=list)
    steps: list[dict[str, np.ndarray]] | None = None


def to_array(x: np.ndarray, model_name: str, dtype: str) -> np.ndarray:
    """NumPy images (N, 28, 28, 1) to the model's input: (N, 784) or NHWC as is."""
    x = x if model_name == "cnn" else x.reshape(len(x), -1)
    return np.ascontiguousarray(x, dtype=dtype)


@contextlib.contextmanager
def floatx(dtype: str):
    """Keras creates optimizer and metric variables in ``floatx``; float64 runs need them float64 too."""
    previous = keras.config.floatx()
    keras.config.set_floatx(dtype)
    try:
        yield
    finally:
        keras.config.set_floatx(previous)


class _CaptureWeights(keras.callbacks.Callback):
    def __init__(self, steps: list):
        super().__init__()
        self.steps = steps

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append(export_weights(self.model))


def compile_model(model: keras.Model, optimizer) -> None:
    # The data loss as a metric too, so that the history splits loss = data loss + penalty.
    # jit_compile=False: XLA may reorder arithmetic; we want Keras's plain TF graph.
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  metrics=["accuracy", keras.metrics.SparseCategoricalCrossentropy(name="data_loss")],
                  jit_compile=False)


def accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray, batch: int = 1024) -> float:
    correct = sum(int((np.asarray(model(x[i:i + batch], training=False)).argmax(1) == y[i:i + batch]).sum())
                  for i in range(0, len(x), batch))
    return correct / len(x)


def fit(model: keras.Model, x: np.ndarray, y: np.ndarray, *, batch_size: int, order: Sequence[np.ndarray],
        x_test: np.ndarray | None = None, y_test: np.ndarray | None = None, capture_steps: bool = False,
        on_epoch: Callable[[int, dict], None] | None = None) -> FitResult:
    """Train a compiled ``model`` over ``order`` (one permutation of range(len(x)) per epoch)."""
    result = FitResult(steps=[] if capture_steps else None)
    callbacks = [_CaptureWeights(result.steps)] if capture_steps else []
    for epoch, perm in enumerate(order):
        logs = model.fit(x[perm], y[perm], batch_size=batch_size, epochs=1, shuffle=False, verbose=0,
                         callbacks=callbacks).history
        loss, data_loss = float(logs["loss"][0]), float(logs["data_loss"][0])
        row = {"epoch": epoch + 1, "loss": loss, "data_loss": data_loss,
               # history's loss includes the penalties; the difference is their weighted mean.
               "penalty": loss - data_loss, "accuracy": float(logs["accuracy"][0])}
        if x_test is not None:
            row["test_accuracy"] = accuracy(model, x_test, y_test)
        result.history.append(row)
        if on_epoch is not None:
            on_epoch(epoch, row)
    return result
