"""The minimal hand-written Keras loop the bench times the suite against (mirror: torch_impl/bench.py).

``l2compare.core.bench_loop`` runs the comparison, the same way for every framework.
"""
from __future__ import annotations

import time

import keras
import numpy as np

import keras_impl
from keras_impl import train


def minimal_loop(model_name: str, x: np.ndarray, y: np.ndarray, order, warm_order, batch_size: int) -> float:
    """What the article writes: the model with its λ, compile with its accuracy metric, and fit
    with Keras's own shuffling. Seconds over as many epochs as ``order`` has, after one untimed
    epoch (``warm_order``'s length) that traces the train function."""
    model = keras_impl.build_model(model_name, l2=0.01)
    xs = train.as_inputs(x, model_name, "float32")
    # The suite's own rule (train.compile_model): TensorFlow without XLA, other backends their default.
    model.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  jit_compile=False if keras.backend.backend() == "tensorflow" else "auto")
    model.fit(xs, y, batch_size=batch_size, epochs=len(warm_order), verbose=0)
    start = time.perf_counter()
    model.fit(xs, y, batch_size=batch_size, epochs=len(order), verbose=0)
    return time.perf_counter() - start
