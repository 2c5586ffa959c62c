"""`l2compare plan`: runs to execute and to reuse, and core-hours from the bench records."""
import math

import pytest

from l2compare.core.data.sets import load
from l2compare.engine import experiments, planning, workers
from l2compare.engine.store import RunStore
from l2compare import cli


def _bench(out, column, model, ms):
    RunStore(out / "bench.jsonl").append({"key": f"{column}-{model}", "framework": column, "model": model,
                                          "threads": 1, "times": {"suite": [ms, ms + 2, ms - 2]}})


def test_plan_counts_what_run_would_execute_and_reuse(tmp_path):
    settings = experiments.Settings(seeds=(0, 1), epochs=2, frameworks=("keras", "torch"), dataset="article")
    specs = experiments.article(settings)
    RunStore(tmp_path / "runs.jsonl").append({"key": specs[0].key, "spec": specs[0].to_dict()})
    result = planning.plan(["article", "sweep"], settings, tmp_path)
    article, sweep = result.rows["article"], result.rows["sweep"]
    assert article[:2] == (len(specs) - 1, 1)
    # sweep shares the article's λ = 0 and 0.01 runs of mlp and cnn: they count once, for the article
    shared = {s.key for s in experiments.sweep(settings)} & {s.key for s in specs}
    assert sweep[:2] == (len(experiments.sweep(settings)) - len(shared), len(shared))
    assert (tmp_path / "runs.jsonl").read_text().count("\n") == 1   # planning writes nothing


def test_core_hours_come_from_the_bench_records(tmp_path):
    _bench(tmp_path, "torch", "mlp", 4.0)   # median 4 ms/step
    spec = experiments.sweep(experiments.Settings(seeds=(0,), epochs=3, frameworks=("torch",), dataset="article"))[0]
    train = len(load("article").x_train)
    seconds, source = planning.run_seconds(spec, train, planning.bench_ms_per_step(tmp_path))
    assert source == "bench.jsonl"
    assert seconds == pytest.approx(workers.RUN_S["torch"] + 3 * math.ceil(train / 32) * 4.0 / 1000)
    keras = spec.replace(framework="keras", regularization="l2")   # no bench record: the engine's estimate
    assert planning.run_seconds(keras, train, planning.bench_ms_per_step(tmp_path)) == (workers.estimate(keras),
                                                                                         "engine estimate")


def test_plan_cli_prints_the_table(tmp_path, capsys):
    _bench(tmp_path, "torch", "mlp", 4.0)
    assert cli.main(["plan", "sweep_large", "--frameworks", "torch", "--seeds", "10", "--epochs", "1",
                     "--dataset", "article", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("sweep_large"))
    assert row.split()[1:3] == ["300", "0"]   # 10 λ × 3 models × 10 seeds, one column
    assert "core-hours" in out and "bench.jsonl" in out


def test_plan_refuses_an_unknown_experiment(tmp_path, capsys):
    assert cli.main(["plan", "sweeps", "--out", str(tmp_path)]) == 2
    assert "unknown experiment 'sweeps'; allowed: article, recipes, sweep, parity, verify, sweep_large, all" in \
        capsys.readouterr().err
