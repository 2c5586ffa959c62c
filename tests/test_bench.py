"""The benchmark runs on a tiny configuration and writes its report (no timing is asserted)."""
from engine import bench


def test_bench_runs_tiny_and_writes_report(tmp_path):
    path = bench.run(tmp_path, repeats=1, epochs=1, models=("mlp",))
    text = path.read_text()
    assert "| mlp" in text and "keras" in text and "torch" in text
    records = bench.RunStore(tmp_path / "bench.jsonl").records()
    assert {r["framework"] for r in records} == {"keras", "torch"}
    for r in records:
        assert len(r["times"]["suite"]) == len(r["times"]["minimal"]) == 1
        assert all(v > 0 for values in r["times"].values() for v in values)
    loops = bench.loop_table(records)
    assert set(loops["met"]) <= {"yes", "NO"} and (loops["ratio (median)"] > 0).all()
