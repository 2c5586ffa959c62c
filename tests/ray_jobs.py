"""Job functions for tests/test_ray.py that leave a trace of every attempt (imported by Ray's workers)."""
from __future__ import annotations

import os


def append_and_raise(path: str) -> None:
    """One line per attempt, then the kind of failure a bug gives."""
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")
    raise ValueError("a deterministic failure")
