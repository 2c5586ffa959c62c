"""Training with Keras's own ``model.fit`` over the caller's batch order (mirror: torch_impl/train.py).

Keras sees exactly the batches the harness chose (each epoch's partial last batch
kept) while everything else — loss, penalty, optimizer, history — is Keras's own.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Sequence

import keras
import numpy as np

from l2compare.core.training import FitResult
from keras_impl.optim import export_state
from keras_impl.weights import export_weights

__all__ = ["FitResult", "accuracy", "as_inputs", "compile_model", "fit", "jit_compile_used", "precision", "train_step"]


def as_inputs(x: np.ndarray, model_name: str, dtype: str, device=None) -> np.ndarray:
    """NumPy images (N, 28, 28, 1) to the model's input: (N, 784) or NHWC as is. ``device`` is
    unused: Keras places inputs itself (it is there to mirror torch_impl.train.as_inputs)."""
    x = x if model_name == "cnn" else x.reshape(len(x), -1)
    return np.ascontiguousarray(x, dtype=dtype)


@contextlib.contextmanager
def precision(dtype: str):
    """Keras creates optimizer and metric variables in ``floatx``; float64 runs need them float64 too."""
    previous = keras.config.floatx()
    keras.config.set_floatx(dtype)
    try:
        yield
    finally:
        keras.config.set_floatx(previous)


class _CaptureSteps(keras.callbacks.Callback):
    def __init__(self, result: FitResult):
        super().__init__()
        self.result = result

    def on_train_batch_end(self, batch, logs=None):
        self.result.steps.append(export_weights(self.model))
        self.result.states.append(export_state(self.model.optimizer, self.model))


def compile_model(model: keras.Model, optimizer) -> None:
    # The data loss as a metric too, so that the history splits loss = data loss + penalty.
    # On TensorFlow, jit_compile=False: XLA may reorder arithmetic; we want Keras's plain TF graph
    # (and "auto" is False on a CPU anyway). Other backends keep their own default, "auto": XLA on
    # JAX (eager JAX is no one's training loop), eager on torch.
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  metrics=["accuracy", keras.metrics.SparseCategoricalCrossentropy(name="data_loss")],
                  jit_compile=False if keras.backend.backend() == "tensorflow" else "auto")


def jit_compile_used() -> bool:
    """Whether ``compile_model`` compiles with XLA on this backend (what ``"auto"`` resolves to: JAX
    yes, torch no; TensorFlow is told no): the runs record it."""
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    compile_model(model, keras.optimizers.SGD())
    return bool(model.jit_compile)


def accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray, batch: int = 1024) -> float:
    correct = sum(int((keras.ops.convert_to_numpy(model(x[i:i + batch], training=False)).argmax(1) == y[i:i + batch]).sum())
                  for i in range(0, len(x), batch))
    return correct / len(x)


class _EpochEnd(keras.callbacks.Callback):
    """Per-epoch history row (and test accuracy) from Keras's own epoch logs."""

    def __init__(self, result: FitResult, x_test, y_test, on_epoch):
        super().__init__()
        self.result, self.x_test, self.y_test, self.on_epoch = result, x_test, y_test, on_epoch

    def on_epoch_end(self, epoch, logs=None):
        loss, data_loss = float(logs["loss"]), float(logs["data_loss"])
        row = {"epoch": epoch + 1, "loss": loss, "data_loss": data_loss,
               # history's loss includes the penalties; the difference is their weighted mean.
               "penalty": loss - data_loss, "accuracy": float(logs["accuracy"])}
        if self.x_test is not None:
            row["test_accuracy"] = accuracy(self.model, self.x_test, self.y_test)
        self.result.history.append(row)
        if self.on_epoch is not None:
            self.on_epoch(epoch, row)


def _batches(x: np.ndarray, y: np.ndarray, order: Sequence[np.ndarray], batch_size: int):
    """Every epoch's batches, in the caller's order, as one tf.data stream (TensorFlow backend).

    One ``fit`` call over it (with ``steps_per_epoch``, Keras keeps one iterator across epochs)
    avoids setting ``fit`` up again every epoch, which costs ~25% per step on a small MLP. Each
    epoch is batched on its own, so every epoch still ends in its partial batch.
    """
    import tensorflow as tf

    xs, ys = tf.constant(x), tf.constant(y)
    epochs = [tf.data.Dataset.from_tensor_slices(np.asarray(perm, dtype=np.int64)).batch(batch_size)
              for perm in order]
    stream = epochs[0]
    for ds in epochs[1:]:
        stream = stream.concatenate(ds)
    return stream.map(lambda idx: (tf.gather(xs, idx), tf.gather(ys, idx)))


def _compiled(model: keras.Model, optimizer) -> None:
    # Compile once per optimizer: a recompile retraces the train function.
    if not model.compiled or model.optimizer is not optimizer:
        compile_model(model, optimizer)


def train_step(model: keras.Model, optimizer, x: np.ndarray, y: np.ndarray) -> None:
    """One optimizer step on one batch: the step ``fit`` takes (mirror: torch_impl.train.train_step)."""
    _compiled(model, optimizer)
    model.train_on_batch(x, y)


def fit(model: keras.Model, optimizer, x: np.ndarray, y: np.ndarray, *, batch_size: int,
        order: Sequence[np.ndarray], x_test: np.ndarray | None = None, y_test: np.ndarray | None = None,
        capture_steps: bool = False, on_epoch: Callable[[int, dict], None] | None = None) -> FitResult:
    """Train ``model`` with ``optimizer`` over ``order`` (one permutation of range(len(x)) per
    epoch), through Keras's own ``fit`` (compiled with ``optimizer`` first unless it is)."""
    _compiled(model, optimizer)
    result = FitResult(steps=[] if capture_steps else None, states=[] if capture_steps else None)
    callbacks = [_EpochEnd(result, x_test, y_test, on_epoch)]
    if capture_steps:
        callbacks.insert(0, _CaptureSteps(result))
    if keras.backend.backend() == "tensorflow":
        steps = -(-len(x) // batch_size)
        model.fit(_batches(x, y, order, batch_size), epochs=len(order), steps_per_epoch=steps, shuffle=False, verbose=0,
                  callbacks=callbacks)
    else:  # other backends: the same, from a generator (a fit per epoch costs ~25% per step on JAX's mlp)
        steps = -(-len(x) // batch_size)
        model.fit(_batch_generator(x, y, order, batch_size), epochs=len(order), steps_per_epoch=steps, shuffle=False,
                  verbose=0, callbacks=callbacks)
    return result


def _batch_generator(x: np.ndarray, y: np.ndarray, order: Sequence[np.ndarray], batch_size: int):
    """Every epoch's batches in the caller's order, each epoch ending in its partial batch (JAX, torch)."""
    for perm in order:
        for start in range(0, len(perm), batch_size):
            idx = perm[start:start + batch_size]
            yield x[idx], y[idx]
