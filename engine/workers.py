"""Execute run specs: one worker process per framework, results appended as they finish.

The parent never imports a framework: Keras picks its backend at import time, and
each framework's thread pools must not disturb the other's timings. Every worker
gets the same fixed thread count. Each finished run is appended to the store at
once (atomically), so an interrupted experiment resumes where it stopped.

Parity-mode torch runs start from Keras's initial weights: the Keras worker
exports them (canonical NumPy dict) and the torch worker imports them.
"""
from __future__ import annotations

import concurrent.futures as cf
import importlib
import multiprocessing
import os
from dataclasses import dataclass, field
from typing import Callable, Iterable

from core.records import finish
from core.spec import RunSpec
from engine.store import RunStore

# framework name -> module implementing versions(), device(), machine(), initial_weights(spec), run(spec, initial).
# Another column (Keras on the JAX backend, say) is one more entry here.
WORKERS = {"keras": "keras_impl.worker", "torch": "torch_impl.worker"}


def worker_environment(threads: int) -> None:
    """Runs first in every worker process (harness, parity, bench), before a framework is imported:
    the same fixed thread count for every math library, and quiet TensorFlow logs."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _init_worker(framework: str, threads: int) -> None:
    """Environment, then the framework's own thread pools fixed before its first op."""
    worker_environment(threads)
    importlib.import_module(WORKERS[framework].split(".")[0] + ".seeding").set_threads(threads)


def _call(framework: str, function: str, *args):
    return getattr(importlib.import_module(WORKERS[framework]), function)(*args)


@dataclass
class Outcome:
    """What an experiment did: the records now stored for its specs, and what failed."""

    records: list[dict] = field(default_factory=list)
    ran: int = 0
    reused: int = 0
    errors: list[tuple[RunSpec, str]] = field(default_factory=list)
    interrupted: bool = False


def unique(specs: Iterable[RunSpec]) -> list[RunSpec]:
    seen, out = set(), []
    for spec in specs:
        if spec.key not in seen:
            seen.add(spec.key)
            out.append(spec)
    return out


def execute(specs: Iterable[RunSpec], store: RunStore, *, threads: int = 1, force: bool = False,
            on_done: Callable[[RunSpec, dict | None], None] | None = None) -> Outcome:
    """Run every spec not yet in ``store`` (all of them with ``force``); return all their records."""
    specs = unique(specs)
    if force:
        keys = {s.key for s in specs}
        store.replace([r for r in store.records() if r["key"] not in keys])
    todo = [s for s in specs if s.key not in store]
    outcome = Outcome(reused=len(specs) - len(todo))
    if todo:
        _run_pools(todo, store, threads, outcome, on_done)
    outcome.records = [r for r in (store.get(s.key) for s in specs) if r is not None]
    return outcome


def _run_pools(todo: list[RunSpec], store: RunStore, threads: int, outcome: Outcome, on_done) -> None:
    context = multiprocessing.get_context("spawn")
    needed = {s.framework for s in todo} | {"keras" for s in todo if s.mode == "parity"}
    pools = {fw: cf.ProcessPoolExecutor(max_workers=1, mp_context=context, initializer=_init_worker,
                                        initargs=(fw, threads)) for fw in sorted(needed)}
    pending: dict[cf.Future, tuple[str, RunSpec]] = {}
    try:
        for spec in todo:
            if spec.framework == "torch" and spec.mode == "parity":
                keras_spec = spec.replace(framework="keras", regularization="l2")
                future = pools["keras"].submit(_call, "keras", "initial_weights", keras_spec.to_dict())
                pending[future] = ("weights", spec)
            else:
                pending[pools[spec.framework].submit(_call, spec.framework, "run", spec.to_dict(), None)] = ("run", spec)
        while pending:
            done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            for future in done:
                kind, spec = pending.pop(future)
                try:
                    result = future.result()
                except cf.process.BrokenProcessPool as exc:
                    raise RuntimeError(f"the {spec.framework} worker process died while running {spec.key}") from exc
                except Exception as exc:  # a bug in one run must not lose the others
                    outcome.errors.append((spec, f"{type(exc).__name__}: {exc}"))
                    if on_done:
                        on_done(spec, None)
                    continue
                if kind == "weights":
                    pending[pools["torch"].submit(_call, "torch", "run", spec.to_dict(), result)] = ("run", spec)
                    continue
                record = finish(spec, result)
                store.append(record)
                outcome.ran += 1
                if on_done:
                    on_done(spec, record)
    except KeyboardInterrupt:
        outcome.interrupted = True
        raise
    finally:
        for pool in pools.values():
            pool.shutdown(wait=not outcome.interrupted, cancel_futures=True)
