"""``l2compare plan``: what an invocation of ``run`` would execute, before it starts.

How many runs (and parity or verify cells) it would execute and how many it would reuse from the
stores, and the core-hours the new ones would take: a run's steps × its column's ms/step on this
machine's bench records (``bench.jsonl``, the suite loop's median for that column and model), or,
without a bench record, the engine's own per-epoch estimate (``workers.EPOCH_S``). It lets a user
choose between the local executor and a cluster.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from l2compare.core.spec import RunSpec
from l2compare.engine import experiments, workers
from l2compare.engine.store import RunStore


@dataclass
class Plan:
    """Per experiment: (to run, to reuse, estimated seconds of the new ones on one core each)."""

    rows: dict[str, tuple[int, int, float]] = field(default_factory=dict)
    sources: set[str] = field(default_factory=set)   # where the estimates came from

    @property
    def core_hours(self) -> float:
        return sum(seconds for _, _, seconds in self.rows.values()) / 3600


def bench_ms_per_step(out: Path) -> dict[tuple[str, str], float]:
    """(column, model) -> the suite loop's median ms/step, from ``out/bench.jsonl`` (1 thread)."""
    path = out / "bench.jsonl"
    if not path.exists():
        return {}
    return {(r["framework"], r["model"]): statistics.median(r["times"]["suite"]) for r in RunStore(path).records()
            if r.get("times", {}).get("suite") and r.get("threads", 1) == 1}


def run_seconds(spec: RunSpec, train_size: int, ms_per_step: dict[tuple[str, str], float]) -> tuple[float, str]:
    """(estimated seconds of ``spec`` on one core, where the estimate came from)."""
    model = {"mlp_bias": "mlp"}.get(spec.model, spec.model)
    per_step = ms_per_step.get((spec.framework, model))
    if per_step is None:
        return workers.estimate(spec), "engine estimate"
    steps = spec.epochs * math.ceil(train_size / spec.batch_size)
    return workers.RUN_S.get(spec.framework, 0.3) + steps * per_step / 1000, "bench.jsonl"


def plan(names: list[str], settings: experiments.Settings, out: Path, *, threads: int = 1) -> Plan:
    """What ``run names`` would do with ``settings`` against the stores under ``out`` (read only)."""
    from l2compare.core.data.sets import load

    result = Plan()
    ms = bench_ms_per_step(out)
    planned = {name: experiments.EXPERIMENTS[name][1](settings) for name in names if name in experiments.EXPERIMENTS}
    if planned:
        train_size = len(load(settings.dataset).x_train)
        groups = {name: workers.unique(specs) for name, specs in planned.items()}
        _, todo = RunStore(out / experiments.RUNS).resume([s.key for specs in groups.values() for s in specs])
        left = set(todo)
        for name, specs in groups.items():   # a run two experiments share counts for the first (as run does)
            new = [spec for spec in specs if spec.key in left]
            left -= {spec.key for spec in new}
            seconds = 0.0
            for spec in new:
                one, source = run_seconds(spec, train_size, ms)
                seconds += one * threads
                result.sources.add(source)
            result.rows[name] = (len(new), len(specs) - len(new), seconds)
    if experiments.PARITY_NAME in names:
        outcome, jobs = experiments.plan_parity(RunStore(out / experiments.PARITY), frameworks=settings.frameworks)
        result.rows[experiments.PARITY_NAME] = (len(outcome.keys) - outcome.reused, outcome.reused,
                                                sum(job.cost for job in jobs) * threads)
        result.sources.add("engine estimate")
    if experiments.VERIFY_NAME in names:
        outcome, jobs = experiments.plan_verify(RunStore(out / experiments.VERIFY))
        result.rows[experiments.VERIFY_NAME] = (len(outcome.keys) - outcome.reused, outcome.reused,
                                                sum(job.cost for job in jobs) * threads)
        result.sources.add("engine estimate")
    return result


def describe(result: Plan, *, workers_here: int) -> str:
    """The plan as a few lines: per experiment, then the total and what it means here."""
    lines = [f"{'experiment':12s} {'to run':>7s} {'reused':>7s} {'core-hours':>11s}"]
    for name, (run, reused, seconds) in result.rows.items():
        lines.append(f"{name:12s} {run:7d} {reused:7d} {seconds / 3600:11.3f}")
    total_run = sum(r for r, _, _ in result.rows.values())
    total_reused = sum(r for _, r, _ in result.rows.values())
    hours = result.core_hours
    lines.append(f"{'total':12s} {total_run:7d} {total_reused:7d} {hours:11.3f}")
    lines.append(f"about {hours / max(1, workers_here):.2f} h on this machine's {workers_here} worker(s); "
                 f"on a cluster, core-hours / its cores (estimates from {', '.join(sorted(result.sources)) or '—'})")
    return "\n".join(lines)

