"""One integer seed and a fixed thread count for the Keras side (mirror: torch_impl/seeding.py).

Keras runs on the backend KERAS_BACKEND named when it was first imported (the suite's columns:
TensorFlow, JAX, torch); each backend fixes its thread pools its own way.
"""
from __future__ import annotations

import keras


def set_threads(n: int) -> None:
    """Fix the backend's thread pools to ``n`` threads, before its first op where it must be.

    TensorFlow: its intra- and inter-op pools. torch: it sizes its pool from OMP_NUM_THREADS, which
    ``l2compare.core.environment.configure`` sets before torch starts (keras_impl never imports torch). JAX: not pinned. XLA's
    CPU client here ignores the XLA_FLAGS thread settings people pass (measured: a 1500² matmul keeps
    cpu/wall ≈ 1.9 on 2 cores with --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1);
    only CPU affinity confines it (cpu/wall 1.00), which needs a core per worker process."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

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
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    # Not yet for the other backends: on GPU, torch's torch.use_deterministic_algorithms(True), JAX's
    # XLA_FLAGS=--xla_gpu_deterministic_ops=true before it starts (their CPU runs here repeat bit for bit).
