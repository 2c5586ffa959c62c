"""What a worker returns for one run, and the framework-neutral facts every record shares.

A worker builds the framework-specific part (history, norms, timings, versions);
``finish`` adds the spec, key, commit and time, and makes it JSON-safe.
"""
from __future__ import annotations

import math
import os
import platform
import subprocess
import time
from functools import lru_cache
from typing import Callable

import numpy as np

from l2compare.core.machine import provenance
from l2compare.core.names import REGULARIZED



class Diverged(Exception):
    """Raised from an epoch callback when the loss is no longer finite."""


def check_finite(epoch: int, row: dict) -> None:
    if not math.isfinite(row["loss"]):
        raise Diverged(f"loss became {row['loss']} in epoch {epoch + 1}")


def epoch_recorder(model: str, history: list[dict], export: Callable[[], dict[str, np.ndarray]]):
    """An ``on_epoch`` callback: add per-tensor norms and the regularized Σw² to the epoch's row,
    keep the row, and stop the run (``Diverged``) once the loss is not finite."""

    def on_epoch(epoch: int, row: dict) -> None:
        row["norms"] = norms_of(export())
        row["regularized_sq"] = regularized_sq(model, row["norms"])
        history.append(row)
        check_finite(epoch, row)

    return on_epoch


def norms_of(weights: dict[str, np.ndarray]) -> dict[str, float]:
    """L2 norm of every tensor (canonical names)."""
    return {name: float(np.linalg.norm(np.asarray(w, dtype=np.float64))) for name, w in weights.items()}


def regularized_sq(model: str, norms: dict[str, float]) -> float:
    return float(sum(norms[name] ** 2 for name in REGULARIZED[model]))


def summary(model: str, history: list[dict], weights: dict[str, np.ndarray], wall: float, steps: int,
            diverged: str | None, initial_norms: dict[str, float]) -> dict:
    """The framework-neutral part of a worker's output."""
    norms = norms_of(weights)
    last = history[-1] if history else {}
    return {
        "initial_norms": initial_norms,
        "status": "diverged" if diverged else "ok",
        "diverged": diverged,
        "history": history,
        "norms": norms,
        "regularized_sq": regularized_sq(model, norms),
        "final": {k: last.get(k) for k in ("loss", "data_loss", "penalty", "accuracy", "test_accuracy")},
        "wall_time_s": wall,
        "steps": steps,
        "steps_per_s": steps / wall if wall > 0 else None,
    }


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=os.path.dirname(os.path.abspath(__file__)))
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def json_safe(value):
    """NaN/inf to None, NumPy scalars to Python: the store refuses NaN."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def finish(spec, output: dict) -> dict:
    """The stored record: spec, key, seed, commit, machine, plus the worker's output.

    The worker's ``machine`` (read in the process that ran the framework, with its thread
    settings and the framework's dispatch) replaces this process's ``provenance()``, which only
    stands in for a worker that gives none.
    """
    from l2compare.core.spec import code_fingerprint

    record = {"key": spec.key, "spec": spec.to_dict(), "seed": spec.seed, "commit": git_commit(),
              "code": code_fingerprint(), "machine": provenance(), "python": platform.python_version(),
              "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **output}
    return json_safe(record)
