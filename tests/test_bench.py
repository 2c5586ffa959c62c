"""The benchmark runs on a tiny configuration and its report is written (no timing is asserted)."""
from l2compare.engine import bench_jobs as bench
from l2compare.engine.store import RunStore
from l2compare.reports import bench_table as bench_report


def test_bench_runs_tiny_and_writes_report(tmp_path):
    """Over 20 s: one worker process per framework column (four framework imports), one timed epoch each."""
    records = bench.run(tmp_path, repeats=1, epochs=1, models=("mlp",))
    assert RunStore(tmp_path / "bench.jsonl").records() == records  # stored as measured
    from l2compare.core import columns

    assert {r["framework"] for r in records} == set(columns.names())   # every column, Keras's backends too
    for r in records:
        assert len(r["times"]["suite"]) == len(r["times"]["minimal"]) == 1
        assert all(v > 0 for values in r["times"].values() for v in values)
    text = bench_report.write(tmp_path, records).read_text()
    assert "| mlp" in text and "keras" in text and "torch" in text
    loops = bench_report.loop_table(records)
    assert set(loops["met"]) <= {"yes", "NO"} and (loops["ratio (median)"] > 0).all()


def test_results_runs_before_and_after_come_from_timing_records(tmp_path):
    store = RunStore(tmp_path / "timings.jsonl")
    old = [("article", 50.0, 36), ("parity", 170.0, 226)]
    for i, (name, wall, ran) in enumerate(old):
        store.append({"key": f"o{i}", "experiment": name, "wall_s": wall, "ran": ran, "reused": 0, "commit": "aaaaaaaa",
                      "created": f"2026-01-01T00:0{i}:00Z"})
    store.append({"key": "n0", "experiment": "article", "wall_s": 20.0, "ran": 36, "reused": 0, "commit": "bbbbbbbb",
                  "created": "2026-01-02T00:00:00Z"})
    store.append({"key": "n1", "experiment": "all", "wall_s": 150.0, "ran": 262, "reused": 0, "commit": "bbbbbbbb",
                  "created": "2026-01-02T00:01:00Z"})
    table = bench_report.results_runs_table(tmp_path)
    assert table["commit"].tolist() == ["aaaaaaa", "bbbbbbb"]
    assert table["wall time (s)"].tolist() == [220.0, 150.0]  # the sequential engine's sum; the schedule's own total
    assert table["runs and cells executed"].tolist() == [262, 262]


def test_bench_of_some_columns_keeps_the_others_records(tmp_path, monkeypatch):
    from l2compare.engine import bench_jobs as engine_bench

    def fake(models, frameworks, **kw):
        return [{"key": f"{fw}-{m}-new", "framework": fw, "model": m, "times": {}} for fw in frameworks for m in models]

    monkeypatch.setattr(engine_bench, "measure", fake)
    engine_bench.run(tmp_path, models=("mlp",), frameworks=["keras", "torch"])
    records = engine_bench.run(tmp_path, models=("mlp",), frameworks=["torch", "keras_jax"])
    # keras's earlier record stays; torch's is replaced; rows in registry order
    assert [(r["framework"], r["key"]) for r in records] == [
        ("keras", "keras-mlp-new"), ("keras_jax", "keras_jax-mlp-new"), ("torch", "torch-mlp-new")]
    assert len(RunStore(tmp_path / "bench.jsonl").records()) == 3
    engine_bench.run(tmp_path, models=("cnn",), frameworks=["torch"])   # another model: torch's mlp record stays
    assert {(r["framework"], r["model"]) for r in RunStore(tmp_path / "bench.jsonl").records()} == {
        ("keras", "mlp"), ("keras_jax", "mlp"), ("torch", "mlp"), ("torch", "cnn")}
