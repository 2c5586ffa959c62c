"""The environment of every process that runs a framework, set in one place.

Called before any framework is imported: by the run engine's workers (``l2compare.engine.workers``),
the parity and bench workers, ``conftest.py`` (tests run both frameworks in one process),
and ``keras_impl``'s import (for users who import it directly). Thread-pool sizes a
framework fixes at run time are its own hook (``TrainingRun.set_threads``).
"""
from __future__ import annotations

import os

# Math libraries' thread pools: assigned, not defaulted, so that a shell's OMP_NUM_THREADS
# cannot disagree with the count the suite records.
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
# Defaults every framework process gets, unless the caller's environment says otherwise:
# quiet TensorFlow logs; oneDNN's graph rewrites off (they reorder float32 arithmetic).
DEFAULTS = {"TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0", "KERAS_BACKEND": "tensorflow"}


def configure(threads: int | None = None, env: dict[str, str] | None = None) -> None:
    """Set this process's environment: the defaults (where unset), ``env`` (a column's own
    variables, assigned), and with ``threads`` every math library's pool size."""
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)
    for name, value in (env or {}).items():
        os.environ[name] = str(value)
    if threads is not None:
        for name in THREAD_VARS:
            os.environ[name] = str(threads)


def limit_loaded_pools(threads: int) -> None:
    """Size the thread pools of the math libraries this process has already loaded (NumPy's OpenBLAS)
    to ``threads``: a worker process imports NumPy before ``configure`` runs (a spawned process
    unpickles its initializer first, a Ray worker starts with it), so the environment variables alone
    leave NumPy's pool at one thread per core, and a float64 norm (a BLAS dot) would round as that
    count splits it. threadpoolctl (scikit-learn's) resizes it in place."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)


def pin_cores(threads: int, slot: int) -> tuple[int, ...] | None:
    """Restrict this process to ``threads`` cores, the ``slot``-th group of them: cores
    ``slot*threads … (slot+1)*threads − 1``, counted (modulo their number) in the sorted list of
    cores this process may use. Returns the cores chosen, or None where the OS has no
    ``sched_setaffinity`` (macOS): there JAX's threads are not pinned.

    Call it before JAX is imported (a worker's initializer, before Keras): JAX on CPU ignores
    the flags that look like thread-pool sizes (XLA_FLAGS ``--xla_cpu_multi_thread_eigen=false``,
    ``intra_op_parallelism_threads=1``: a 1-thread worker still used ~1.9 cores of 2,
    comparisons/test_jax_threads.py) and sizes its pools from the affinity mask it finds at
    start (tsl's port::MaxParallelism), so the mask is the one limit it keeps.
    """
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    if not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    cores = tuple(sorted({allowed[(slot * threads + i) % len(allowed)] for i in range(threads)}))
    os.sched_setaffinity(0, cores)
    return cores
