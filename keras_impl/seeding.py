"""One integer seed and a fixed thread count for the Keras side (mirror: torch_impl/seeding.py)."""
from __future__ import annotations

import keras
import tensorflow as tf


def set_threads(n: int) -> None:
    """Fix TensorFlow's thread pools to ``n`` threads. Must run before TF executes its first op."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(n)
    except RuntimeError:
        # TF already initialized its runtime: the pools are fixed for this process.
        pass


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and the backend, so that initializers are reproducible."""
    keras.utils.set_random_seed(int(seed))


def enable_determinism() -> None:
    """Deterministic kernels (a separate switch: it can cost speed)."""
    tf.config.experimental.enable_op_determinism()
