"""The Keras side of the training run (mirror: torch_impl/worker.py).

``Run`` supplies the hooks of ``l2compare.core.training.TrainingRun``; the template (seed, build,
start weights, optimizer, fit, export, summarize) is written once there. The run engine
calls it in a worker process of its own; it takes and returns plain dicts and NumPy arrays.
"""
from __future__ import annotations

import keras
import numpy as np

import keras_impl
from l2compare.core.machine import provenance
from l2compare.core.spec import RunSpec
from l2compare.core.training import TrainingRun
from keras_impl import bench, optim, recipes, seeding, train
from keras_impl.weights import export_weights, import_weights

FRAMEWORK = "keras"


def versions() -> dict:
    """Keras's version and its backend library's (TensorFlow, JAX or torch), read from the installed
    packages (keras_impl imports no other framework than Keras's TensorFlow)."""
    from importlib.metadata import version

    library = {"tensorflow": "tensorflow-cpu", "jax": "jax", "torch": "torch"}[keras.backend.backend()]
    try:
        library_version = version(library)
    except Exception:   # tensorflow (not -cpu) where tensorflow-cpu has no build
        library_version = version(library.removesuffix("-cpu"))
    return {"keras": keras.__version__, library.removesuffix("-cpu"): library_version, "numpy": np.__version__}


def device() -> str:
    """Where the backend runs: the Keras torch and JAX backends use CUDA when present, as
    tensorflow-cpu cannot."""
    if keras.backend.backend() == "torch":   # keras.distribution has no torch implementation
        from keras.src.backend.torch.core import get_device   # the device Keras puts tensors on

        return "gpu" if get_device().startswith("cuda") else "cpu"
    return "gpu" if any(d.split(":")[0] in ("gpu", "cuda") for d in keras.distribution.list_devices()) else "cpu"


def machine() -> dict:
    """The machine facts of this process (``l2compare.core.machine.provenance``), whether its runs compile with
    XLA, and, on TensorFlow, its own thread pools (0 = its default, one thread per core)."""
    facts = {**provenance(), "versions": versions(), "jit_compile": train.jit_compile_used()}
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        facts.update(tf_intra_op_threads=tf.config.threading.get_intra_op_parallelism_threads(),
                     tf_inter_op_threads=tf.config.threading.get_inter_op_parallelism_threads())
    return facts


def defaults() -> dict:
    """Keras's own defaults, read off live objects (PORTING.md reports them beside torch's)."""
    dense = keras.layers.Dense(1)

    def f32(value) -> float:  # Keras stores lr as a float32 variable: 0.01 reads 0.009999999776
        return float(f"{float(value):.7g}")

    return {"sgd_lr": f32(keras.optimizers.SGD().learning_rate), "adam_lr": f32(keras.optimizers.Adam().learning_rate),
            "adam_epsilon": keras.optimizers.Adam().epsilon, "adamw_weight_decay": keras.optimizers.AdamW().weight_decay,
            "kernel_initializer": type(dense.kernel_initializer).__name__,
            "bias_initializer": type(dense.bias_initializer).__name__}


class Run(TrainingRun):
    """The Keras hooks of the training run."""

    framework = FRAMEWORK

    def versions(self) -> dict:
        return versions()

    def device(self) -> str:
        return device()

    def machine(self) -> dict:
        return machine()

    def defaults(self) -> dict:
        return defaults()

    def backend(self) -> str:
        return keras.backend.backend()

    def set_threads(self, n: int) -> None:
        seeding.set_threads(n)

    def seed(self, seed: int) -> None:
        seeding.seed_everything(seed)

    def precision(self, dtype: str):
        return train.precision(dtype)

    def build(self, spec: RunSpec, l2: float | None = None) -> keras.Model:
        if l2 is None:
            l2 = recipes.model_l2(spec.regularization, spec.l2)
        return keras_impl.build_model(spec.model, l2=l2, dtype=spec.dtype)

    def make_optimizer(self, spec: RunSpec, model, *, stock: bool | None = None):
        """Keras's own optimizers in both modes (they are the reference; ``stock`` changes nothing)."""
        return optim.make_optimizer(model, spec.optimizer, spec.regularization)

    def inputs(self, x: np.ndarray, model_name: str, dtype: str):
        return train.as_inputs(x, model_name, dtype)

    def labels(self, y: np.ndarray):
        return y

    def fit(self, model, optimizer, x, y, **kwargs):
        return train.fit(model, optimizer, x, y, **kwargs)

    def export_weights(self, model) -> dict[str, np.ndarray]:
        return export_weights(model)

    def import_weights(self, model, weights: dict[str, np.ndarray]) -> None:
        import_weights(model, weights)

    def minimal_loop(self, model_name, x, y, order, warm_order, batch_size) -> float:
        return bench.minimal_loop(model_name, x, y, order, warm_order, batch_size)
