"""Execute work in worker processes, longest job first; each run is stored as soon as it finishes.

The parent never imports a framework: Keras picks its backend at import time, and a
framework's thread pools must be fixed before its first op. A worker process serves the
framework columns (``l2compare.core.columns``) its jobs need: ``l2compare.core.environment.configure`` sets its
environment (the only place), then each column's ``Run.set_threads`` fixes its pools, so
every worker gets the same fixed thread count. Columns whose environments disagree (two
Keras backends, say) never share a process.

One scheduler (``schedule``) keeps every worker busy until the last job: whenever a worker
is free it takes the longest job left (by estimate), so the jobs that start last are the
short ones. A worker runs one job at a time, so the timings a record carries are those of
a framework alone on its core.

Each finished run is appended to the store at once (atomically), so an interrupted run
resumes where it stopped. Parity-mode runs of a torch column start from the ``keras``
column's initial weights: a first job exports them (canonical NumPy dict), a second trains.
"""
from __future__ import annotations

import atexit
import concurrent.futures as cf
import multiprocessing
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

from l2compare.core import columns, environment
from l2compare.core.names import REFERENCE
from l2compare.core.records import finish
from l2compare.core.spec import RunSpec
from l2compare.engine.store import RunStore

# Seconds per epoch on the embedded digits data, one thread, by (column, model), and per run on
# top (build, compile, tracing), by column: measured on this project's 2-core x86 machine. Only
# the order of the jobs depends on them, and a slower machine scales them all alike.
EPOCH_S = {("keras", "cnn"): 0.53, ("keras", "mlp"): 0.12, ("torch", "cnn"): 0.31, ("torch", "mlp"): 0.055,
           ("keras_jax", "cnn"): 1.0, ("keras_jax", "mlp"): 0.15, ("keras_torch", "cnn"): 0.72,
           ("keras_torch", "mlp"): 0.12}
RUN_S = {"keras": 0.3, "torch": 0.05, "keras_jax": 0.5, "keras_torch": 0.2}

_RUNS: dict[str, object] = {}  # in a worker process: column name -> that column's Run


def serve(served: tuple[columns.Column, ...], threads: int, slot: int | None = None) -> None:
    """Make this process a worker for the ``served`` columns (once; later calls do nothing): the
    environment first, for every column served, then each framework imported and its thread pools
    fixed before its first op. A process serving a column that ignores thread settings
    (``Column.pin_cores``: JAX) is confined to ``threads`` cores, its ``slot``'s (``environment.pin_cores``),
    so that two such workers never share a core."""
    if all(column.name in _RUNS for column in served):
        return
    for column in served:
        if column.name not in columns.names():  # a column registered by the caller, not at import
            columns.register(column)
        environment.configure(threads, column.env)
    environment.limit_loaded_pools(threads)
    if slot is not None and any(column.pin_cores for column in served):
        environment.pin_cores(threads, slot)
    for column in served:
        _RUNS[column.name] = column.run()
        _RUNS[column.name].set_threads(threads)


def served(column: str):
    """In a process ``serve`` made a worker: the column's ``Run``."""
    return _RUNS[column]


def _init_worker(served: tuple[columns.Column, ...], threads: int, slots=None) -> None:
    """A pool process's initializer: ``serve``, with the next slot of ``slots`` (a counter the pool's
    processes share)."""
    slot = None
    if slots is not None:
        with slots.get_lock():
            slot, slots.value = slots.value, slots.value + 1
    serve(served, threads, slot)
    # When the pool shuts down, every result has gone back through the result queue (flushed
    # before atexit runs): skip the frameworks' own teardown, seconds of it after a long run.
    atexit.register(os._exit, 0)


def _call(column: str, method: str, *args):
    return getattr(_RUNS[column], method)(*args)


def _timed(function: Callable, args: tuple):
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


@dataclass
class Job:
    """One unit of work for a worker process: ``function(*args)`` there, ``done(result, seconds)``
    here (which may return the job that follows from it), ``failed(message)`` if it raised."""

    columns: tuple[str, ...]  # the columns its process must serve
    cost: float  # estimated seconds; the scheduler starts the longest first
    function: Callable  # module-level, so that it pickles by name
    args: tuple
    done: Callable[[object, float], "Job | None"]
    failed: Callable[[str], None]
    label: str = ""
    later: tuple[str, ...] = ()  # the columns of the jobs it leads to (so processes are set up for them)


@dataclass
class Outcome:
    """What one experiment did: the records now stored for its runs, and what failed."""

    keys: list[str] = field(default_factory=list)  # its runs, in order, each once
    stored: dict[str, dict] = field(default_factory=dict)  # key -> record (shared by one plan)
    ran: int = 0
    reused: int = 0
    seconds: float = 0.0  # worker time of the jobs it ran
    errors: list[tuple[str, str]] = field(default_factory=list)  # (what failed, why)

    @property
    def records(self) -> list[dict]:
        return [self.stored[k] for k in self.keys if k in self.stored]

    def add(self, record: dict, store: RunStore, label: str, on_done=None) -> None:
        """A finished run or cell: appended to the store at once, counted, reported."""
        store.append(record)
        self.stored[record["key"]] = record
        self.ran += 1
        if on_done:
            on_done(label, record)

    def fail(self, label: str, message: str, on_done=None) -> None:
        self.errors.append((label, message))
        if on_done:
            on_done(label, None)


def unique(specs: Iterable[RunSpec]) -> list[RunSpec]:
    return list({spec.key: spec for spec in specs}.values())  # equal keys: equal specs


def estimate(spec: RunSpec) -> float:
    """Seconds the run should take here; a column not measured above is costed as its framework's
    reference column (mlp_bias as mlp; an unknown model as cnn)."""
    name = spec.framework if spec.framework in RUN_S else columns.get(spec.framework).framework
    model = {"mlp_bias": "mlp"}.get(spec.model, spec.model)
    return RUN_S[name] + EPOCH_S.get((name, model), EPOCH_S[(name, "cnn")]) * spec.epochs


def plan_runs(groups: dict[str, Iterable[RunSpec]], store: RunStore, *, force: bool = False,
              on_done: Callable[[str, dict | None], None] | None = None) -> tuple[dict[str, Outcome], list[Job]]:
    """An outcome per group of specs (an experiment) and the jobs that run what is not stored yet.

    The store is read once for all groups (``--force`` applied there); a run listed by several
    groups runs once, counted for the first group that lists it and reused by the others.
    """
    groups = {name: unique(specs) for name, specs in groups.items()}
    by_key = {spec.key: spec for specs in groups.values() for spec in specs}
    stored, todo = store.resume(by_key, force=force)
    left, jobs, outcomes = set(todo), [], {}
    for name, specs in groups.items():
        outcome = outcomes[name] = Outcome(keys=[s.key for s in specs], stored=stored)
        for spec in specs:
            if spec.key in left:
                left.discard(spec.key)
                jobs.append(_run_job(spec, store, outcome, on_done))
            else:
                outcome.reused += 1
    return outcomes, jobs


def _run_job(spec: RunSpec, store: RunStore, outcome: Outcome, on_done) -> Job:
    column = columns.get(spec.framework)
    label = f"{spec.framework} {spec.model} {spec.regularization} seed {spec.seed}"

    def failed(message: str) -> None:
        outcome.fail(label, message, on_done)

    def done(result: dict, seconds: float) -> None:
        outcome.seconds += seconds
        outcome.add(finish(spec, result), store, label, on_done)

    def train(initial) -> Job:
        return Job((column.name,), estimate(spec), _call, (column.name, "run", spec.to_dict(), initial), done, failed,
                   label)

    if spec.mode != "parity" or column.name == columns.PARITY_SOURCE:
        return train(None)
    source = columns.get(columns.PARITY_SOURCE)
    # The source's spec for the same run: a torch recipe is no Keras configuration, so it asks for
    # the weights of the Keras l2 model (the same weights: λ places no weight).
    source_spec = spec.replace(framework=source.name, regularization=spec.regularization
                               if column.framework == source.framework else REFERENCE[source.framework])

    def weights_done(initial, seconds: float) -> Job:
        outcome.seconds += seconds
        return train(initial)

    # Costed as the pair, so that it starts where its training run belongs in the order.
    return Job((source.name,), estimate(spec) + RUN_S[source.name], _call,
               (source.name, "initial_weights", source_spec.to_dict()), weights_done, failed,
               f"{source.name} initial weights for {label}", later=(column.name,))


def _process_kinds(jobs: list[Job]) -> list[tuple[columns.Column, ...]]:
    """The kinds of worker process the jobs need: each a tuple of the columns it serves. Every
    job's columns (and those of the jobs it leads to) share one kind; columns whose environments
    disagree never do (two Keras backends); a column may be served by several kinds (torch beside
    Keras on TensorFlow and beside Keras on JAX). As few kinds as that allows."""
    kinds: list[list[columns.Column]] = []
    for group in dict.fromkeys(g for job in jobs for g in (job.columns, job.later) if g):
        need = [columns.get(name) for name in group]
        if any(all(c in kind for c in need) for kind in kinds):
            continue
        if not all(_agree(a, b) for a in need for b in need):
            raise ValueError(f"columns {group} need environments that disagree")
        kind = next((k for k in kinds if all(_agree(c, other) for c in need for other in k)), None)
        if kind is None:
            kinds.append(need)
        else:
            kind.extend(c for c in need if c not in kind)
    return [tuple(kind) for kind in kinds]


def _kind_of(job: Job, kinds: list[tuple[columns.Column, ...]]) -> tuple[columns.Column, ...]:
    """The first kind of process that serves all of the job's columns."""
    return next(k for k in kinds if all(columns.get(name) in k for name in job.columns))


def _agree(a: columns.Column, b: columns.Column) -> bool:
    return all(b.env.get(name, value) == value for name, value in a.env.items())


def finish_job(job: Job, result, seconds: float, ready: list[Job]) -> None:
    """A job's result, back in the parent: its ``done`` (which records it), and the job that follows
    from it queued among ``ready`` by cost, longest first (any executor's loop)."""
    follow = job.done(result, seconds)
    if follow is not None:
        ready.append(follow)
        ready.sort(key=lambda j: j.cost, reverse=True)


def default_workers(threads: int) -> int:
    """One worker process per ``threads`` cores this process may use; at most 4, as each one
    holds both frameworks (about 2 GB)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(4, cores // threads))


def schedule(jobs: list[Job], *, threads: int = 1, workers: int | None = None) -> None:
    """Run ``jobs`` (and the jobs their results lead to), at most ``workers`` at a time, each in
    a worker process of its columns' kind, longest first. A failed job is reported to its
    ``failed``; the others go on."""
    if not jobs:
        return
    workers = workers or default_workers(threads)
    kinds = _process_kinds(jobs)
    context = multiprocessing.get_context("spawn")
    pools: dict[tuple, cf.ProcessPoolExecutor] = {}
    ready = sorted(jobs, key=lambda j: j.cost, reverse=True)
    running: dict[cf.Future, Job] = {}
    # With one kind of process, one job queued per worker beside the one it runs, so that a worker
    # never waits for this process between jobs; the queue is shared and first in, first out, so
    # each free worker still takes the longest job left. With several kinds (several pools), only
    # as many jobs as workers, so that no more than that run at once.
    in_flight = 2 * workers if len(kinds) == 1 else workers
    interrupted = False
    try:
        while ready or running:
            while ready and len(running) < in_flight:
                job = ready.pop(0)
                kind = _kind_of(job, kinds)
                if kind not in pools:
                    pools[kind] = cf.ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker,
                                                         initargs=(kind, threads, context.Value("i", 0)))
                running[pools[kind].submit(_timed, job.function, job.args)] = job
            finished, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for future in finished:
                job = running.pop(future)
                try:
                    result, seconds = future.result()
                except cf.process.BrokenProcessPool as exc:
                    raise RuntimeError(f"a worker process died (or could not start) running {job.label}") from exc
                except Exception as exc:  # a bug in one job must not lose the others
                    job.failed(f"{type(exc).__name__}: {exc}")
                    continue
                finish_job(job, result, seconds, ready)
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        for pool in pools.values():
            pool.shutdown(wait=not interrupted, cancel_futures=True)


def execute(specs: Iterable[RunSpec], store: RunStore, *, threads: int = 1, force: bool = False,
            workers: int | None = None,
            on_done: Callable[[str, dict | None], None] | None = None) -> Outcome:
    """Run every spec not yet in ``store`` (all of them with ``force``); return all their records."""
    outcomes, jobs = plan_runs({"": specs}, store, force=force, on_done=on_done)
    schedule(jobs, threads=threads, workers=workers)
    return outcomes[""]

