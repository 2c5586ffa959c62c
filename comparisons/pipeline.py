"""What ``l2compare run`` does: execute experiments (resumable), build the parity table,
write reports, print a one-screen summary. The parent process imports no framework.
"""
from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing
import os
import time
from itertools import groupby
from pathlib import Path

from tqdm import tqdm

from comparisons import experiments, harness, parity_table
from comparisons.records import git_commit
from comparisons.spec import RunSpec
from comparisons.store import RunStore

RUNS, PARITY, INDEX = "runs.jsonl", "parity.jsonl", "experiments.json"


def _bar(total: int, desc: str, enabled: bool):
    return tqdm(total=total, desc=desc, unit="run", disable=not enabled or total == 0, dynamic_ncols=True)


def _run_specs(specs: list[RunSpec], out: Path, *, threads: int, force: bool, progress: bool) -> harness.Outcome:
    store = RunStore(out / RUNS)
    todo = len({s.key for s in specs} - (set() if force else store.keys()))
    with _bar(todo, "runs", progress) as bar:
        def done(spec, record):
            bar.set_postfix_str(f"{spec.framework} {spec.model} {spec.regularization} seed {spec.seed}", refresh=False)
            bar.update()

        return harness.execute(specs, store, threads=threads, force=force, on_done=done)


def _parity_worker_init(threads: int) -> None:
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from keras_impl.seeding import set_threads as keras_threads
    from torch_impl.seeding import set_threads as torch_threads

    keras_threads(threads)
    torch_threads(threads)


def _run_cells(cells):
    return [parity_table.run_cell(cell) for cell in cells]


def run_parity(out: Path, *, threads: int = 1, force: bool = False, progress: bool = True, workers: int = 2) -> list[dict]:
    """Every parity cell not yet recorded, in ``workers`` processes (both frameworks in each:
    parity compares them in-process). Cells sharing a Keras trajectory go to the same worker."""
    store = RunStore(out / PARITY)
    cells = parity_table.cells()
    if force:
        store.replace([r for r in store.records() if r["key"] not in {c.key for c in cells}])
    todo = [c for c in cells if c.key not in store]
    groups = [list(g) for _, g in groupby(todo, key=lambda c: (c.row, c.dtype))]
    if groups:
        context = multiprocessing.get_context("spawn")
        with _bar(len(todo), "parity cells", progress) as bar, cf.ProcessPoolExecutor(
                max_workers=workers, mp_context=context, initializer=_parity_worker_init, initargs=(threads,)) as pool:
            for future in cf.as_completed([pool.submit(_run_cells, g) for g in groups]):
                for record in future.result():
                    store.append(record)
                    bar.update()
    by_key = {r["key"]: r for r in store.records()}
    return [by_key[c.key] for c in cells if c.key in by_key]


def _save_index(out: Path, index: dict[str, list[str]]) -> None:
    """Which run keys make up each experiment, so that `l2compare report` can rebuild the tables."""
    path = out / INDEX
    merged = json.loads(path.read_text()) if path.exists() else {}
    merged.update(index)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(merged, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _save_timing(out: Path, experiment: str, seconds: float, ran: int, reused: int) -> None:
    """A timing record per experiment (bench.md reports them): results hold no hand-typed numbers."""
    import uuid

    RunStore(out / "timings.jsonl").append({
        "key": uuid.uuid4().hex, "experiment": experiment, "wall_s": seconds, "ran": ran, "reused": reused,
        "commit": git_commit(), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})


def report(out: Path) -> list[Path]:
    """Rebuild every table and plot from the records under ``out``."""
    from comparisons import report as report_module

    runs = RunStore(out / RUNS).records()
    parity = RunStore(out / PARITY).records()
    index = json.loads((out / INDEX).read_text()) if (out / INDEX).exists() else {}
    return report_module.write_reports(out, runs, parity, {k: set(v) for k, v in index.items()})


def run_and_report(names: list[str], settings: experiments.Settings, out: Path, *, threads: int = 1,
                   force: bool = False, progress: bool = True) -> int:
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    planned = {n: experiments.EXPERIMENTS[n][1](settings) for n in names if n in experiments.EXPERIMENTS}
    _save_index(out, {n: [s.key for s in group] for n, group in planned.items()})
    outcome = harness.Outcome()
    for name, specs in planned.items():  # one experiment at a time, so that each is timed
        began = time.perf_counter()
        result = _run_specs(specs, out, threads=threads, force=force, progress=progress)
        _save_timing(out, name, time.perf_counter() - began, result.ran, result.reused)
        outcome.ran += result.ran
        outcome.errors += result.errors
        outcome.records += [r for r in result.records if r["key"] not in {x["key"] for x in outcome.records}]
    outcome.reused = len({s.key for g in planned.values() for s in g}) - outcome.ran - len(outcome.errors)
    parity = []
    if "parity" in names:
        began = time.perf_counter()
        before = len(RunStore(out / PARITY).keys()) if not force else 0
        parity = run_parity(out, threads=threads, force=force, progress=progress)
        _save_timing(out, "parity", time.perf_counter() - began, len(parity) - before, before)
    written = report(out)
    _summary(planned, outcome, parity, written, out, time.perf_counter() - start)
    return 1 if outcome.errors else 0


def compare(specs: list[RunSpec], out: Path, *, threads: int = 1, force: bool = False, progress: bool = True) -> int:
    """Run a user's own comparison and print its side-by-side summary (records go to ``out``)."""
    from comparisons import report as report_module

    out.mkdir(parents=True, exist_ok=True)
    outcome = _run_specs(specs, out, threads=threads, force=force, progress=progress)
    frame = report_module.runs_frame(outcome.records)
    print(report_module.compare_table(frame))
    _print_errors(outcome)
    return 1 if outcome.errors else 0


def _print_errors(outcome: harness.Outcome) -> None:
    for spec, message in outcome.errors:
        print(f"  failed: {spec.framework} {spec.model} {spec.regularization} seed {spec.seed}: {message}")


def _summary(planned, outcome, parity, written, out: Path, seconds: float) -> None:
    diverged = sum(r.get("status") == "diverged" for r in outcome.records)
    print(f"\nl2compare: {outcome.ran} runs ran, {outcome.reused} reused from {out / RUNS}"
          + (f", {diverged} diverged" if diverged else "") + (f", {len(outcome.errors)} FAILED" if outcome.errors else ""))
    for name, group in planned.items():
        print(f"  {name:8s} {len(harness.unique(group)):4d} runs")
    if parity:
        verdicts = {v: sum(r["verdict"] == v for r in parity) for v in ("exact", "close", "wrong")}
        print(f"  parity   {len(parity):4d} cells: " + ", ".join(f"{n} {v}" for v, n in verdicts.items()))
    _print_errors(outcome)
    print(f"wrote {len(written)} files; start with {out / 'README.md'}")
    print(f"done in {seconds:.0f} s")
