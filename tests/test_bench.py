"""The benchmark runs on a tiny configuration and its report is written (no timing is asserted)."""
from engine import bench
from engine.store import RunStore
from reports import bench as bench_report


def test_bench_runs_tiny_and_writes_report(tmp_path):
    records = bench.run(tmp_path, repeats=1, epochs=1, models=("mlp",))
    assert RunStore(tmp_path / "bench.jsonl").records() == records  # stored as measured
    assert {r["framework"] for r in records} == {"keras", "torch"}
    for r in records:
        assert len(r["times"]["suite"]) == len(r["times"]["minimal"]) == 1
        assert all(v > 0 for values in r["times"].values() for v in values)
    text = bench_report.write(tmp_path, records).read_text()
    assert "| mlp" in text and "keras" in text and "torch" in text
    loops = bench_report.loop_table(records)
    assert set(loops["met"]) <= {"yes", "NO"} and (loops["ratio (median)"] > 0).all()
