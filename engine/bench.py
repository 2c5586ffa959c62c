"""``l2compare bench``: the suite's own speed, measured, and ``results/bench.md``.

For each model and framework, in a worker process of that framework alone (the
frameworks never run at the same time, so neither disturbs the other's timing):
the ms/step of the suite's training loop against a minimal hand-written loop on
the same data, and of each L2 recipe against none. Ratios are taken per repeat
(the variants are interleaved within a repeat) and reported as their median.
Each measurement is stored as a record in ``bench.jsonl``; ``bench.md`` is built
from those records and from the experiment timings of ``make results``.
"""
from __future__ import annotations

import concurrent.futures as cf
import importlib
import multiprocessing
import statistics
import time
from pathlib import Path

import pandas as pd

from engine.workers import worker_environment
from core.records import git_commit, json_safe
from engine.store import RunStore

MODULES = {"keras": "keras_impl.bench", "torch": "torch_impl.bench"}
TARGET_LOOP = 1.10  # suite loop / minimal loop
TARGET_PENALTY = 1.10  # penalty / no regularization, on mlp
BASELINE = {"keras": "recipe:none", "torch": "recipe:none"}


def _measure(framework: str, threads: int, model: str, kwargs: dict) -> dict:
    module = importlib.import_module(MODULES[framework])
    importlib.import_module(f"{framework}_impl.seeding").set_threads(threads)
    return {"times": module.measure(model, **kwargs), "versions": module.versions()}


def measure(models=("mlp", "cnn"), frameworks=("keras", "torch"), *, repeats=5, epochs=2, threads=1,
            dataset="digits") -> list[dict]:
    """One record per (framework, model): ms/step per variant and repeat."""
    records = []
    context = multiprocessing.get_context("spawn")
    for framework in frameworks:  # one framework at a time, in a fresh process
        with cf.ProcessPoolExecutor(1, mp_context=context, initializer=worker_environment, initargs=(threads,)) as pool:
            for model in models:
                kwargs = dict(repeats=repeats, epochs=epochs, dataset=dataset)
                out = pool.submit(_measure, framework, threads, model, kwargs).result()
                records.append(json_safe({
                    "key": f"{framework}-{model}-{time.time_ns()}", "framework": framework, "model": model,
                    "threads": threads, "commit": git_commit(), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    **kwargs, **out}))
    return records


def _median_ratio(a: list[float], b: list[float]) -> float:
    return statistics.median(x / y for x, y in zip(a, b))


def _same_loop_gap(record: dict) -> float:
    """Relative gap between two measurements of one and the same loop (suite vs its recipe twin)."""
    t = record["times"]
    twin = t["recipe:l2" if record["framework"] == "keras" else "recipe:penalty"]
    a, b = statistics.median(t["suite"]), statistics.median(twin)
    return abs(a - b) / min(a, b)


def loop_table(records: list[dict]) -> pd.DataFrame:
    rows = []
    for r in records:
        t = r["times"]
        ratio = _median_ratio(t["suite"], t["minimal"])
        rows.append({"model": r["model"], "framework": r["framework"],
                     "minimal ms/step": statistics.median(t["minimal"]), "suite ms/step": statistics.median(t["suite"]),
                     "ratio (median)": ratio, "target": f"≤ {TARGET_LOOP:.2f}",
                     "met": "yes" if ratio <= TARGET_LOOP else "NO", "repeats": len(t["suite"])})
    return pd.DataFrame(rows)


def recipe_table(records: list[dict]) -> pd.DataFrame:
    rows = []
    for r in records:
        t = r["times"]
        base = t[BASELINE[r["framework"]]]
        for name, values in t.items():
            if not name.startswith("recipe:") or values is base:
                continue
            recipe = name.split(":", 1)[1]
            ratio = _median_ratio(values, base)
            checked = r["model"] == "mlp" and recipe in ("penalty", "l2")
            rows.append({"model": r["model"], "framework": r["framework"], "recipe": recipe,
                         "ms/step": statistics.median(values), "ratio to none": ratio,
                         "target": f"≤ {TARGET_PENALTY:.2f}" if checked else "",
                         "met": ("yes" if ratio <= TARGET_PENALTY else "NO") if checked else ""})
    return pd.DataFrame(rows)


def experiment_table(out: Path) -> pd.DataFrame:
    """Wall time of each experiment of the last `make results`, from its timing records."""
    records = RunStore(out / "timings.jsonl").records()
    latest = {}
    for r in records:
        latest[r["experiment"]] = r
    return pd.DataFrame([{"experiment": k, "wall time (s)": v["wall_s"], "runs executed": v.get("ran"),
                          "runs reused": v.get("reused"), "when": v["created"]} for k, v in latest.items()])


WHY = {
    "keras": ("keras_impl's loop tracks the data loss as an extra metric (so that the history splits "
              "loss = data loss + penalty), evaluates nothing else, and feeds the harness's batch order "
              "through one tf.data stream; what remains is that metric's share of a step this small."),
    "torch": ("the suite's loop also accumulates the epoch's loss, data loss, penalty and accuracy every step "
              "(what Keras's history reports), which a minimal loop skips."),
}


def write(out: Path, records: list[dict]) -> Path:
    loops, recipes = loop_table(records), recipe_table(records)
    lines = ["# Benchmark: the suite's own training loops", "",
             f"Generated by `l2compare bench` (`make bench`) from `bench.jsonl`; commit {records[-1].get('commit')}, "
             f"{records[-1]['threads']} thread(s) per framework, {records[-1]['epochs']} epochs of "
             f"`{records[-1]['dataset']}` per measurement, batch 32, Adam. Each framework ran alone in its own process. "
             "Ratios are the median over repeats of per-repeat ratios (variants interleaved within a repeat).", "",
             "## Suite loop against a minimal loop (both with the article's L2)", "",
             loops.to_markdown(index=False, floatfmt=".3g"), ""]
    for _, row in loops[loops["met"] == "NO"].iterrows():
        lines.append(f"- **Missed** on {row['model']} / {row['framework']} ({row['ratio (median)']:.2f}×): "
                     + WHY[row["framework"]])
    lines += ["", "Noise gauge: `suite` and the recipe `l2` (Keras) / `penalty` (torch) below run the same loop; "
              "in this run their medians differ by "
              + ", ".join(f"{r['model']}/{r['framework']} {_same_loop_gap(r):.0%}" for r in records)
              + ". Read ratios closer to 1 than that as within noise.",
              "", "## Cost of each L2 recipe against no regularization (suite loop)", "",
              recipes.to_markdown(index=False, floatfmt=".3g"), ""]
    for _, row in recipes[recipes["met"] == "NO"].iterrows():
        owner = ("Keras's own `L2` regularizer (λ·sum(square(w)), added to the loss by `fit`; the suite adds "
                 "nothing to it)" if row["framework"] == "keras" else "the suite's fused penalty, λ·dot(w, w)")
        base = row["ms/step"] / row["ratio to none"]
        lines.append(f"- **Missed** on {row['model']} / {row['framework']} / {row['recipe']} "
                     f"({row['ratio to none']:.2f}×): the L2 term is {owner}; its forward and backward over the "
                     f"{row['model']}'s regularized tensors take about {row['ms/step'] - base:.2f} ms of a "
                     f"{row['ms/step']:.2f} ms step this small.")
    experiments = experiment_table(out)
    if not experiments.empty:
        lines += ["", "## Wall time of each experiment in `make results`", "",
                  experiments.to_markdown(index=False, floatfmt=".0f"), ""]
    path = out / "bench.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def run(out: Path, *, repeats=5, epochs=2, threads=1, models=("mlp", "cnn")) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    store = RunStore(out / "bench.jsonl")
    records = measure(models, repeats=repeats, epochs=epochs, threads=threads)
    store.replace(records)  # the latest measurement replaces the previous one
    return write(out, records)
