"""``l2compare bench``: the suite's own speed, measured.

For each model and framework, in a worker process of that framework alone (the
frameworks never run at the same time, so neither disturbs the other's timing):
the ms/step of the suite's training loop against a minimal hand-written loop on
the same data, and of each L2 recipe against none. Ratios are taken per repeat
(the variants are interleaved within a repeat) and reported as their median.
Each measurement is stored as a record in ``bench.jsonl``; ``l2compare.reports.bench_table`` builds
``bench.md`` from those records and from the experiment timings of ``make results``.
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import time
from pathlib import Path

from l2compare.core import bench_loop as bench, columns
from l2compare.core.records import git_commit, json_safe
from l2compare.engine import workers
from l2compare.engine.store import RunStore


def _measure(column: str, model: str, kwargs: dict) -> dict:
    """In the column's worker process: its training run's bench (``l2compare.core.bench_loop``), and its versions."""
    run = workers.served(column)
    return {"times": bench.measure(run, column, model, **kwargs), "versions": run.versions()}


def measure(models=("mlp", "cnn"), frameworks=None, *, repeats=5, epochs=2, threads=1,
            dataset="digits") -> list[dict]:
    """One record per (framework column, model): ms/step per variant and repeat; every registered
    column unless ``frameworks`` names some."""
    records = []
    context = multiprocessing.get_context("spawn")
    for framework in frameworks or columns.names():  # one column at a time, in a fresh process
        # A process set up as a run worker's (``workers.serve``: environment, thread pools, JAX on a core).
        with cf.ProcessPoolExecutor(1, mp_context=context, initializer=workers.serve,
                                    initargs=((columns.get(framework),), threads, 0)) as pool:
            for model in models:
                kwargs = dict(repeats=repeats, epochs=epochs, dataset=dataset)
                out = pool.submit(_measure, framework, model, kwargs).result()
                records.append(json_safe({
                    "key": f"{framework}-{model}-{time.time_ns()}", "framework": framework, "model": model,
                    "threads": threads, "commit": git_commit(), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    **kwargs, **out}))
    return records


def run(out: Path, *, repeats=5, epochs=2, threads=1, models=("mlp", "cnn"), frameworks=None) -> list[dict]:
    """Measure (every column, or those ``frameworks`` names), store the records in ``out/bench.jsonl``
    and return every record stored: a column and model's new measurement replaces its previous one,
    the others' records stay.

    ``l2compare.reports.bench_table.write`` turns them into ``bench.md`` (the CLI calls it: reports are a floor above).
    """
    out.mkdir(parents=True, exist_ok=True)
    store = RunStore(out / "bench.jsonl")
    records = measure(models, frameworks, repeats=repeats, epochs=epochs, threads=threads)
    measured = {(r["framework"], r["model"]) for r in records}
    kept = [r for r in store.records() if (r["framework"], r["model"]) not in measured] if store.path.exists() else []
    order = {name: i for i, name in enumerate(columns.names())}
    store.replace(sorted(kept + records, key=lambda r: order.get(r["framework"], len(order))))
    return store.records()
