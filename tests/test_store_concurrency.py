"""Several writers on one store (issue 22): every record stored exactly once, no writer waiting on another.

The store's contract first (two RunStore objects on one file), then two real ``l2compare run`` processes
on one folder, then a local run beside a Ray run. The runs use a fake column (tests/store_fakes.py) so
that a whole ``run article`` costs seconds; a barrier makes both writers plan every run before either
stores one, so that each run is computed twice and stored once.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import store_fakes
from l2compare.engine.store import RunStore

ROOT = Path(__file__).resolve().parents[1]
RUNS = 12  # run article, one column, 2 seeds: 3 models x 2 λ x 2 seeds

DRIVER = textwrap.dedent("""
    import sys
    from pathlib import Path
    import store_fakes
    from l2compare import cli, pipeline
    from l2compare.engine import workers
    if sys.argv[5] == store_fakes.NAME:
        store_fakes.register()
        pipeline.report = lambda out: []  # fake records hold nothing to tabulate
    schedule = workers.schedule
    def after_barrier(jobs, **kw):
        store_fakes.barrier(Path(sys.argv[2]), sys.argv[3], sys.argv[4].split(","))
        return schedule(jobs, **kw)
    workers.schedule = after_barrier
    sys.exit(cli.main(["run", "article", "--frameworks", sys.argv[5], "--seeds", "2", "--epochs", "1",
                       "--out", sys.argv[1], "--no-progress"]))
""")


def rec(key: str, **fields) -> dict:
    return {"key": key, **fields}


def start_driver(out: Path, me: str, others: str, frameworks: str = store_fakes.NAME) -> subprocess.Popen:
    """``l2compare run article`` on ``out``, which plans, then waits at the barrier for ``others``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    return subprocess.Popen([sys.executable, "-c", DRIVER, str(out), str(out.parent / "barrier"), me, others,
                             frameworks],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def reuse_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "stored meanwhile by another writer" in line]


def assert_each_run_once(out: Path, stderrs: list[str]) -> None:
    keys = [json.loads(line)["key"] for line in (out / "runs.jsonl").read_text().splitlines()]
    assert len(keys) == len(set(keys)) == RUNS
    # Both writers computed every run, so exactly one of them found each one stored by the other.
    lines = [line for err in stderrs for line in reuse_lines(err)]
    assert len(lines) == RUNS and {line.split()[2] for line in lines} == set(keys)
    assert all("(same key, same code); reusing its record" in line for line in lines)
    assert not any("Traceback" in err for err in stderrs), stderrs


# ------------------------------------------------------------------ the store's contract


def test_a_run_stored_meanwhile_is_reused_once(tmp_path):
    path, seen = tmp_path / "runs.jsonl", []
    first, second = RunStore(path), RunStore(path, on_reused=seen.append)
    assert second.resume(["k"]) == ({}, ["k"])  # the second writer plans k...
    first.append(rec("k", code="c1", by="first"))  # ...the first stores it meanwhile
    assert second.append(rec("k", code="c1", by="second")) == rec("k", code="c1", by="first")
    assert seen == [rec("k", code="c1", by="first")]
    assert [json.loads(line)["by"] for line in path.read_text().splitlines()] == ["first"]
    with pytest.raises(ValueError, match="'k' is already stored"):
        RunStore(path).append(rec("k", code="c1"))  # without on_reused: refused, as before


def test_the_same_key_from_other_code_is_refused(tmp_path):
    path = tmp_path / "runs.jsonl"
    RunStore(path).append(rec("k", code="old"))
    with pytest.raises(ValueError, match=r"'k' is stored by other code \(old, this run's is new\)"):
        RunStore(path, on_reused=print).append(rec("k", code="new"))
    assert path.read_text().count("\n") == 1


def test_an_append_reads_only_what_others_added_since(tmp_path, monkeypatch):
    path = tmp_path / "runs.jsonl"
    other, mine = RunStore(path), RunStore(path)
    for i in range(200):
        other.append(rec(f"k{i:03d}", payload="x" * 1000))
    mine.append(rec("mine-1"))  # its first read: the whole file
    other.append(rec("theirs", payload="y" * 1000))
    read, pread = [], os.pread
    monkeypatch.setattr(os, "pread", lambda fd, n, offset: read.append(n) or pread(fd, n, offset))
    mine.append(rec("mine-2"))
    assert sum(read) < 3000, "its last line (to know the file), then only the lines added since"
    with pytest.raises(ValueError, match="'theirs' is already stored"):
        mine.append(rec("theirs"))


def test_a_file_rewritten_in_place_is_read_again(tmp_path):
    path = tmp_path / "runs.jsonl"
    store = RunStore(path)
    for key in ("a1", "a2", "a3"):
        store.append(rec(key))
    with path.open("r+") as f:  # same inode, same size: a3's line now holds a4
        f.write(path.read_text().replace('"a3"', '"a4"'))
    store.append(rec("a3"))  # no longer stored
    with pytest.raises(ValueError, match="'a4' is already stored"):
        store.append(rec("a4"))
    with path.open("r+") as f:  # a middle line changed in place, the last one not: a2 is now a5
        f.write(path.read_text().replace('"a2"', '"a5"'))
    store.append(rec("a2"))
    with pytest.raises(ValueError, match="'a5' is already stored"):
        store.append(rec("a5"))
    other = RunStore(path)
    other.replace([rec("a1")])  # a new file (another inode)
    store.append(rec("a2"))
    assert [r["key"] for r in store.records()] == ["a1", "a2"]


# ------------------------------------------------------------------ real processes


@pytest.mark.parametrize("frameworks", [store_fakes.NAME, pytest.param("torch", marks=pytest.mark.slow)])
def test_two_runs_on_one_folder_both_finish_each_run_stored_once(tmp_path, frameworks):
    """The fake column in the default run (5 s); real torch runs, tables and plots too with -m slow (about 90 s here)."""
    out = tmp_path / "results"
    drivers = [start_driver(out, "one", "two", frameworks), start_driver(out, "two", "one", frameworks)]
    stderrs, meanwhile = [], 0
    for driver in drivers:
        stdout, stderr = driver.communicate(timeout=600)
        assert driver.returncode == 0, stderr
        summary = re.search(rf"l2compare: {RUNS} runs ran(?: \((\d+) of them stored first by another writer: its "
                            rf"records kept\))?, 0 reused", stdout)
        assert summary, stdout
        meanwhile += int(summary.group(1) or 0)
        stderrs.append(stderr)
    assert meanwhile == RUNS
    assert_each_run_once(out, stderrs)
    assert json.loads((out / "experiments.json").read_text())["article"]  # the index, merged under a lock


@pytest.fixture(scope="module")
def ray_local():
    """A Ray instance of this module's own (2 CPUs), whose workers can import store_fakes."""
    ray = pytest.importorskip("ray")
    path = os.pathsep.join([str(ROOT), str(ROOT / "tests")])
    ray.init(num_cpus=2, runtime_env={"env_vars": {"PYTHONPATH": path}}, include_dashboard=False,
             log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_a_local_run_beside_a_ray_run_each_run_stored_once(ray_local, tmp_path, monkeypatch, capsys):
    from l2compare import pipeline
    from l2compare.engine import experiments, ray_executor

    store_fakes.register()
    monkeypatch.setattr(pipeline, "report", lambda out: [])
    schedule = ray_executor.schedule

    def after_barrier(jobs, **kw):
        store_fakes.barrier(tmp_path / "barrier", "ray", ["local"])
        return schedule(jobs, **kw)

    monkeypatch.setattr(ray_executor, "schedule", after_barrier)
    out = tmp_path / "results"
    local = start_driver(out, "local", "ray")
    try:
        settings = experiments.Settings(seeds=(0, 1), epochs=1, frameworks=(store_fakes.NAME,))
        assert pipeline.run_and_report(["article"], settings, out, progress=False, executor="ray") == 0
    finally:
        from l2compare.core import columns

        columns.unregister(store_fakes.NAME)
        _, local_err = local.communicate(timeout=120)
    assert local.returncode == 0, local_err
    assert_each_run_once(out, [capsys.readouterr().err, local_err])
