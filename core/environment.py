"""The environment of every process that runs a framework, set in one place.

Called before any framework is imported: by the run engine's workers (``engine.workers``),
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
