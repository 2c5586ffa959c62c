"""A tiny end-to-end run of the real CLI: worker processes, store, resume after a kill, reports."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


from l2compare.engine.store import RunStore

# Keras on TensorFlow and native torch: the two columns keep the run small (the engine is the same for all four).
TINY = ["--epochs", "1", "--seeds", "1", "--no-progress", "--frameworks", "keras,torch"]


def _cli(*args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "l2compare.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def _keys(path: Path) -> list[str]:
    return [json.loads(line)["key"] for line in path.read_text().splitlines()]


def test_killed_run_resumes_without_duplicates_and_reports(tmp_path):
    """Over 20 s: the real CLI twice (a killed run and its resume), each starting a worker process per
    framework, and the reports; 12 one-epoch runs leave room for the kill to land mid-experiment."""
    out = tmp_path / "results"
    runs = out / "runs.jsonl"
    # article with 1 seed, 1 epoch: 3 models × 2 λ × 2 frameworks = 12 runs.
    first = _cli("run", "article", "--out", str(out), *TINY, start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and (not runs.exists() or len(runs.read_text().splitlines()) < 3):
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)  # the whole process group: parent and workers, mid-run
    first.wait()
    done_before = _keys(runs)
    assert 3 <= len(done_before) < 12, "the kill should land mid-experiment"

    second = _cli("run", "article", "--out", str(out), *TINY)
    stdout, stderr = second.communicate(timeout=300)
    assert second.returncode == 0, stderr
    keys = _keys(runs)
    assert len(keys) == len(set(keys)) == 12, "every run recorded exactly once"
    assert keys[:len(done_before)] == done_before, "finished runs were kept, not redone"
    assert f"{12 - len(done_before)} runs ran, {len(done_before)} reused" in stdout
    for name in ("article.csv", "article.md", "norm_vs_epoch.png", "README.md"):
        assert (out / name).stat().st_size > 0, name
    records = RunStore(runs).records()
    assert {r["framework"] for r in records} == {"keras", "torch"}
    timings = RunStore(out / "timings.jsonl").records()  # the killed run timed nothing
    assert [(t["experiment"], t["ran"], t["reused"]) for t in timings] == [
        ("article", 12 - len(done_before), len(done_before)), ("total of article", 12 - len(done_before), len(done_before))]
    assert all(r["status"] == "ok" and len(r["history"]) == 1 for r in records)


def test_compare_prints_a_side_by_side_summary(tmp_path):
    proc = _cli("compare", "--model", "mlp", "--recipes", "penalty,naive_wd", "--out", str(tmp_path), *TINY)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    lines = [line for line in stdout.splitlines() if line.startswith("|")]
    assert any("keras" in line and "l2" in line for line in lines)
    assert any("naive_wd" in line for line in lines)


def test_diverging_run_is_recorded_not_a_crash(tmp_path):
    from l2compare.engine import workers as harness
    from l2compare.core.spec import OptimizerSpec, RunSpec

    spec = RunSpec(model="mlp", framework="torch", regularization="penalty", l2=0.01, epochs=2,
                   optimizer=OptimizerSpec("sgd", lr=1e6))  # blows up in the first epoch
    outcome = harness.execute([spec], RunStore(tmp_path / "runs.jsonl"))
    assert not outcome.errors
    (record,) = outcome.records
    assert record["status"] == "diverged" and "loss became" in record["diverged"]
    assert len(record["history"]) == 1  # stopped after the epoch that diverged
