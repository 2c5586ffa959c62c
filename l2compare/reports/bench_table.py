"""``results/bench.md``: the suite's own speed, from the records ``l2compare.engine.bench_jobs`` measured.

The ms/step of the suite's training loop against a minimal hand-written loop on the same data,
and of each L2 recipe against none, per model and framework; ratios are the median over repeats
of per-repeat ratios (the variants are interleaved within a repeat). Also the wall time of each
experiment of the last ``make results``, from its timing records.
"""
from __future__ import annotations

import statistics
from pathlib import Path

import pandas as pd

from l2compare.engine.store import RunStore
from l2compare.engine.files import write_atomic
from l2compare.reports.frames import framework_of

TARGET_LOOP = 1.10  # suite loop / minimal loop
TARGET_PENALTY = 1.10  # penalty / no regularization, on mlp
BASELINE = "recipe:none"   # every column's: the same loop without any L2


def _median_ratio(a: list[float], b: list[float]) -> float:
    return statistics.median(x / y for x, y in zip(a, b))


def _same_loop_gap(record: dict) -> float:
    """Relative gap between two measurements of one and the same loop (suite vs its recipe twin)."""
    t = record["times"]
    twin = t["recipe:l2" if framework_of(record["framework"]) == "keras" else "recipe:penalty"]
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
        base = t[BASELINE]
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


def results_runs_table(out: Path) -> pd.DataFrame:
    """The whole of the latest `make results` run that executed anything under each engine, one row
    per engine: before and after the engine changed, from the timing records. A run of the one
    schedule writes an `all` record (its wall time); the earlier engine ran experiment after
    experiment, so its total is their sum."""
    by_commit: dict[str, list[dict]] = {}
    for r in RunStore(out / "timings.jsonl").records():
        by_commit.setdefault(r.get("commit") or "?", []).append(r)
    rows = []
    for commit, records in by_commit.items():
        total = [r for r in records if r["experiment"] == "all"]
        parts = [r for r in records if r["experiment"] != "all" and not r["experiment"].startswith("total")]
        if total:
            row = {"engine": "one schedule over every run and cell", "wall time (s)": total[-1]["wall_s"],
                   "runs and cells executed": total[-1].get("ran")}
        else:
            latest = {r["experiment"]: r for r in parts}
            row = {"engine": "experiment after experiment", "wall time (s)": sum(r["wall_s"] for r in latest.values()),
                   "runs and cells executed": sum(r.get("ran") or 0 for r in latest.values())}
        if row["runs and cells executed"]:
            rows.append({"commit": commit[:7], **row, "when": records[-1]["created"]})
    latest = {row["engine"]: row for row in rows}
    return pd.DataFrame(sorted(latest.values(), key=lambda row: row["when"]))


WHY = {
    "keras": ("keras_impl's loop tracks the data loss as an extra metric (so that the history splits "
              "loss = data loss + penalty), evaluates nothing else, and feeds the harness's batch order "
              "through one fit call (a tf.data stream on TensorFlow, a generator on JAX and torch); what remains "
              "is that metric's share of a step this small."),
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
                     + WHY[framework_of(row["framework"])])
    lines += ["", "Noise gauge: `suite` and the recipe `l2` (Keras) / `penalty` (torch) below run the same loop; "
              "in this run their medians differ by "
              + ", ".join(f"{r['model']}/{r['framework']} {_same_loop_gap(r):.0%}" for r in records)
              + ". Read ratios closer to 1 than that as within noise.",
              "", "## Cost of each L2 recipe against no regularization (suite loop)", "",
              recipes.to_markdown(index=False, floatfmt=".3g"), ""]
    for _, row in recipes[recipes["met"] == "NO"].iterrows():
        owner = ("Keras's own `L2` regularizer (λ·sum(square(w)), added to the loss by `fit`; the suite adds "
                 "nothing to it)" if framework_of(row["framework"]) == "keras" else "the suite's fused penalty, λ·dot(w, w)")
        base = row["ms/step"] / row["ratio to none"]
        lines.append(f"- **Missed** on {row['model']} / {row['framework']} / {row['recipe']} "
                     f"({row['ratio to none']:.2f}×): the L2 term is {owner}; its forward and backward over the "
                     f"{row['model']}'s regularized tensors take about {row['ms/step'] - base:.2f} ms of a "
                     f"{row['ms/step']:.2f} ms step this small.")
    runs = results_runs_table(out)
    if not runs.empty:
        lines += ["", "## `make results` from empty, before and after", "",
                  runs.to_markdown(index=False, floatfmt=".0f"), ""]
    experiments = experiment_table(out)
    if not experiments.empty:
        lines += ["", "## Wall time of each experiment in `make results`", "",
                  experiments.to_markdown(index=False, floatfmt=".0f"), ""]
    path = out / "bench.md"
    write_atomic(path, "\n".join(lines) + "\n")
    return path
