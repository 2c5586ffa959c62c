"""Run one RunSpec on the Keras side (mirror: torch_impl/worker.py).

The harness calls these in a worker process of their own; they take and return
only plain dicts and NumPy arrays.
"""
from __future__ import annotations

import time

import keras
import numpy as np

import keras_impl
from core import records
from core.data import load
from core.machine import provenance
from core.seeds import derive, epoch_orders
from core.spec import RunSpec
from keras_impl import optim, recipes, seeding, train
from keras_impl.weights import export_weights

FRAMEWORK = "keras"


def versions() -> dict:
    import tensorflow as tf

    return {"keras": keras.__version__, "tensorflow": tf.__version__, "numpy": np.__version__}


def device() -> str:
    import tensorflow as tf

    return "gpu" if tf.config.list_logical_devices("GPU") else "cpu"


def machine() -> dict:
    """The machine facts of this process (``core.machine.provenance``) and TensorFlow's own:
    its thread pools (0 = TensorFlow's default, one thread per core)."""
    import tensorflow as tf

    return {**provenance(), "tf_intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "tf_inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(), "versions": versions()}


def defaults() -> dict:
    """Keras's own defaults, read off live objects (PORTING.md reports them beside torch's)."""
    dense = keras.layers.Dense(1)

    def f32(value) -> float:  # Keras stores lr as a float32 variable: 0.01 reads 0.009999999776
        return float(f"{float(value):.7g}")

    return {"sgd_lr": f32(keras.optimizers.SGD().learning_rate), "adam_lr": f32(keras.optimizers.Adam().learning_rate),
            "adam_epsilon": keras.optimizers.Adam().epsilon, "adamw_weight_decay": keras.optimizers.AdamW().weight_decay,
            "kernel_initializer": type(dense.kernel_initializer).__name__,
            "bias_initializer": type(dense.bias_initializer).__name__}


def _build(spec: RunSpec) -> keras.Model:
    seeding.seed_everything(derive(spec.seed, "init"))
    return keras_impl.build_model(spec.model, l2=recipes.model_l2(spec.regularization, spec.l2), dtype=spec.dtype)


def initial_weights(spec_dict: dict) -> dict[str, np.ndarray]:
    """Keras's initial weights for this spec (what parity mode gives torch to start from)."""
    spec = RunSpec.from_dict(spec_dict)
    with train.floatx(spec.dtype):
        return export_weights(_build(spec))


def run(spec_dict: dict, initial: dict[str, np.ndarray] | None = None) -> dict:
    """Train as the spec says; Keras starts from its own initializers in both modes."""
    spec = RunSpec.from_dict(spec_dict)
    data = load(spec.dataset)
    x = train.to_array(data.x_train, spec.model, spec.dtype)
    x_test = train.to_array(data.x_test, spec.model, spec.dtype)
    order = epoch_orders(len(x), spec.epochs, spec.seed)
    with train.floatx(spec.dtype):
        model = _build(spec)
        initial_norms = records.norms_of(export_weights(model))
        train.compile_model(model, optim.make_optimizer(spec.optimizer, spec.regularization, model))
        diverged, history = None, []
        start = time.perf_counter()
        try:
            train.fit(model, x, data.y_train, batch_size=spec.batch_size, order=order, x_test=x_test,
                      y_test=data.y_test, on_epoch=records.epoch_recorder(spec.model, history, lambda: export_weights(model)))
        except records.Diverged as exc:
            diverged = str(exc)
        wall = time.perf_counter() - start
    steps = len(history) * -(-len(x) // spec.batch_size)
    out = records.summary(spec.model, history, export_weights(model), wall, steps, diverged, initial_norms)
    return {"framework": FRAMEWORK, "defaults": defaults(), "backend": keras.backend.backend(), "versions": versions(),
            "device": device(), "machine": machine(), **out}


class Run:
    """This framework's training run, as ``core.columns`` finds it (interface for the engine)."""

    framework = FRAMEWORK

    def set_threads(self, n: int) -> None:
        seeding.set_threads(n)

    def machine(self) -> dict:
        return machine()

    def initial_weights(self, spec_dict: dict) -> dict:
        return initial_weights(spec_dict)

    def run(self, spec_dict: dict, initial=None) -> dict:
        return run(spec_dict, initial)
