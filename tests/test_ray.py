"""The Ray executor (l2compare/engine/ray_executor.py) on a local Ray instance: the same records as the local
workers, and the three faults (a killed worker, a run that raises, a killed driver) on real processes."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from l2compare.core.spec import OptimizerSpec, RunSpec
from l2compare.engine import ray_executor, workers
from l2compare.engine.store import RunStore

ROOT = Path(__file__).resolve().parents[1]
TASK_TITLE = b"ray::_run_task"   # a Ray worker's process title while it runs one of our tasks


@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray instance for the module (the executor joins it rather than starting its own)."""
    ray = pytest.importorskip("ray")
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(Path(__file__).parent)   # ray_jobs, for Ray's workers (the executor adds it)
    try:
        ray_executor._init(None)
    finally:
        os.environ.pop("PYTHONPATH") if previous is None else os.environ.__setitem__("PYTHONPATH", previous)
    yield ray
    ray.shutdown()


def _spec(framework="torch", mode="native", model="mlp", epochs=2, dataset="article", seed=0) -> RunSpec:
    return RunSpec(model=model, framework=framework, regularization="l2" if framework.startswith("keras") else "penalty",
                   optimizer=OptimizerSpec("adam"), mode=mode, dataset=dataset, epochs=epochs, seed=seed)


def _execute(specs, store: RunStore, *, executor: str) -> workers.Outcome:
    outcomes, jobs = workers.plan_runs({"x": specs}, store)
    if executor == "ray":
        ray_executor.schedule(jobs, threads=1)
    else:
        workers.schedule(jobs, workers=2)
    return outcomes["x"]


def _same(a: dict, b: dict) -> bool:
    return all(a[k] == b[k] for k in ("spec", "initial_norms", "norms", "history", "final", "regularized_sq"))


def test_a_ray_run_gives_the_local_runs_record(ray_instance, tmp_path):
    """torch bit for bit, Keras too on this machine (the same CPU, the same single thread): native, and
    parity mode, where torch starts from the Keras task's result. Over 20 s: six runs (each side of the
    comparison), each in a fresh worker process that imports its framework; one epoch less saves little."""
    specs = [_spec("torch"), _spec("torch", mode="parity"), _spec("keras")]
    on_ray = _execute(specs, RunStore(tmp_path / "ray.jsonl"), executor="ray")
    local = _execute(specs, RunStore(tmp_path / "local.jsonl"), executor="local")
    assert not on_ray.errors and not local.errors
    ray_records = {r["key"]: r for r in RunStore(tmp_path / "ray.jsonl").records()}
    local_records = {r["key"]: r for r in RunStore(tmp_path / "local.jsonl").records()}
    assert ray_records.keys() == local_records.keys() == {s.key for s in specs}
    for key, record in ray_records.items():
        assert _same(record, local_records[key]), record["spec"]
    torch_parity = ray_records[specs[1].key]
    assert torch_parity["initial_norms"] == ray_records[specs[2].key]["initial_norms"]   # Keras's weights


def _task_pids() -> list[int]:
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if cmdline.read_bytes().startswith(TASK_TITLE):
                pids.append(int(cmdline.parent.name))
        except OSError:
            continue
    return pids


def test_a_worker_killed_mid_run_is_retried_and_recorded_once(ray_instance, tmp_path):
    """SIGKILL the Ray worker process while it trains; Ray reruns the task in a new process, and the
    driver records the run once, with the record an uninterrupted run gives. Over 20 s: the run must
    outlast the kill (8 epochs of the cnn on digits), then run again whole, and once more locally."""
    spec = _spec("torch", model="cnn", epochs=8, dataset="digits")
    killed: list[int] = []

    def kill_when_running():
        deadline = time.time() + 60
        while time.time() < deadline and not killed:
            pids = _task_pids()
            if pids:
                time.sleep(1.0)   # mid-run: past the imports, into the epochs
                for pid in _task_pids():
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            time.sleep(0.1)

    killer = threading.Thread(target=kill_when_running)
    killer.start()
    outcome = _execute([spec], RunStore(tmp_path / "ray.jsonl"), executor="ray")
    killer.join()
    assert killed, "no worker process was seen running the task"
    assert not outcome.errors and outcome.ran == 1
    lines = (tmp_path / "ray.jsonl").read_text().splitlines()
    assert len(lines) == 1
    _execute([spec], RunStore(tmp_path / "local.jsonl"), executor="local")
    assert _same(RunStore(tmp_path / "ray.jsonl").records()[0], RunStore(tmp_path / "local.jsonl").records()[0])


def test_a_run_that_raises_is_recorded_as_failed_and_not_retried(ray_instance, tmp_path):
    """A run whose data file is missing raises in the worker (a bug, not bad luck): reported as failed,
    nothing stored, and tried once: the worker process that ran it is still the one Ray has (a retry
    after an exception would need retry_exceptions, which the executor never sets)."""
    calls = []
    spec = _spec("torch", dataset=f"npz:{tmp_path / 'missing.npz'}")
    outcomes, jobs = workers.plan_runs({"x": [spec]}, RunStore(tmp_path / "ray.jsonl"))
    (job,) = jobs
    failed = job.failed
    job.failed = lambda message: (calls.append(message), failed(message))
    ray_executor.schedule(jobs, threads=1)
    assert len(calls) == 1 and "missing.npz" in calls[0], calls
    assert outcomes["x"].errors and not (tmp_path / "ray.jsonl").exists()


def test_a_job_that_raises_runs_once(ray_instance, tmp_path):
    """Every attempt leaves a line: one line, so Ray did not retry the exception (its worker did not die)."""
    import ray_jobs

    trace, failures = tmp_path / "attempts.txt", []
    job = workers.Job(("torch",), 1.0, ray_jobs.append_and_raise, (str(trace),), lambda r, s: None, failures.append)
    ray_executor.schedule([job], threads=1)
    assert failures == ["ValueError: a deterministic failure"]
    assert len(trace.read_text().splitlines()) == 1


def test_a_killed_driver_loses_nothing_and_duplicates_nothing(ray_instance, tmp_path):
    """The CLI's sweep_large, reduced (torch only, 1 seed, 1 epoch, the article's data), on the module's
    local Ray instance, which the driver joins with --address as it would a cluster's (a Ray start per
    driver cost more than the runs): SIGKILL the driver once some runs are recorded, rerun it, and
    every run is stored once. Over 20 s: two driver processes (each imports the CLI and joins Ray) and
    30 one-epoch runs, enough that the kill lands mid-sweep."""
    address = ray_instance.get_runtime_context().gcs_address
    out = tmp_path / "results"
    argv = [sys.executable, "-m", "l2compare.cli", "run", "sweep_large", "--executor", "ray", "--frameworks", "torch",
            "--seeds", "1", "--epochs", "1", "--dataset", "article", "--out", str(out), "--no-progress",
            "--address", address]
    store = out / "runs.jsonl"
    first = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and (not store.exists() or len(store.read_text().splitlines()) < 3):
            time.sleep(0.2)
        recorded = len(store.read_text().splitlines()) if store.exists() else 0
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    finally:
        _kill_group(first)
    assert 3 <= recorded < 30, recorded   # killed mid-sweep
    kept = RunStore(store).records()
    second = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    keys = [r["key"] for r in RunStore(store).records()]
    lines = store.read_text().splitlines()
    assert len(lines) == len(set(keys)) == 30   # 10 λ × 3 models, each once
    assert {r["key"] for r in kept} <= set(keys)
    assert f"{30 - len(kept)} runs ran, {len(kept)} reused" in second.stdout


def _kill_group(process: subprocess.Popen) -> None:
    """The killed driver and anything it started share its session: stop them too."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
