"""Timing of keras_impl's training loop against plain ``model.fit`` (mirror: torch_impl/bench.py).

Called in a worker process by ``engine.bench``; returns plain dicts of
milliseconds per step. Each variant gets a fresh model and one untimed warm-up
epoch (tracing the train function), then ``epochs`` timed epochs.
"""
from __future__ import annotations

import time

import keras
import numpy as np

import keras_impl
from core.data import load
from core.seeds import epoch_orders
from core.spec import OptimizerSpec
from keras_impl import optim, seeding, train

CONFIGS = ("none", "l2", "wd")


def _model(model_name: str, l2: float):
    return keras_impl.build_model(model_name, l2=l2)


def _minimal(model_name, x, y, epochs, batch_size, warm_order):
    """What the article writes: compile with its accuracy metric and fit, Keras's own shuffling."""
    model = _model(model_name, 0.01)
    model.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  jit_compile=False)
    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)  # warm-up: traces the train step
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0)
    return time.perf_counter() - start


def _suite(model_name, x, y, order, batch_size, config, warm_order):
    model = _model(model_name, 0.01 if config == "l2" else 0.0)
    spec = OptimizerSpec("adam", weight_decay=0.004 if config == "wd" else None)
    train.compile_model(model, optim.make_optimizer(spec, config, model))
    train.fit(model, x, y, batch_size=batch_size, order=warm_order)
    start = time.perf_counter()
    train.fit(model, x, y, batch_size=batch_size, order=order)
    return time.perf_counter() - start


def measure(model_name: str, *, repeats: int = 5, epochs: int = 2, batch_size: int = 32,
            dataset: str = "digits") -> dict[str, list[float]]:
    """ms/step per variant and repeat: ``minimal`` and ``suite`` (both with kernel L2, the
    article's setting) and ``recipe:<config>`` for each Keras config (the suite's loop)."""
    data = load(dataset)
    x = train.to_array(data.x_train, model_name, "float32")
    y = data.y_train
    steps = epochs * -(-len(x) // batch_size)
    times: dict[str, list[float]] = {}
    for rep in range(repeats):
        order, warm = epoch_orders(len(x), epochs, rep), epoch_orders(len(x), 1, 1000 + rep)
        runs = {"minimal": lambda: _minimal(model_name, x, y, epochs, batch_size, warm),
                "suite": lambda: _suite(model_name, x, y, order, batch_size, "l2", warm)}
        runs.update({f"recipe:{c}": (lambda c: lambda: _suite(model_name, x, y, order, batch_size, c, warm))(c)
                     for c in CONFIGS})
        for name, run in runs.items():
            seeding.seed_everything(rep)
            times.setdefault(name, []).append(1e3 * run() / steps)
    return times


def versions() -> dict:
    import tensorflow as tf

    return {"keras": keras.__version__, "tensorflow": tf.__version__, "numpy": np.__version__}
