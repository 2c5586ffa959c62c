"""l2compare.engine.workers: worker processes set up from the column registry, one read of the store per
plan, ``--force`` in one place, longest job first, failures reported without losing the rest.

A fake column (its worker is this module's ``Run``, no framework) keeps these fast; it is
registered in the parent only, so a worker that runs it proves it registered the pickled column.
"""
from __future__ import annotations

import os
import time

import pytest

from l2compare.core import columns
from l2compare.core.spec import RunSpec
from l2compare.engine import workers
from l2compare.engine.store import RunStore


class Run:
    """The fake column's training run: reports the process it ran in."""

    framework = "torch"
    threads = None

    def set_threads(self, n: int) -> None:
        Run.threads = n

    def run(self, spec_dict: dict, initial=None) -> dict:
        if spec_dict["seed"] == 13:
            raise ValueError("unlucky seed")
        return {"pid": os.getpid(), "fake_env": os.environ.get("FAKE_ENV"), "omp": os.environ.get("OMP_NUM_THREADS"),
                "threads": Run.threads, "registered": "fake" in columns.names(), "started": time.time(),
                "initial": sorted(initial) if initial else None}


@pytest.fixture
def fake():
    column = columns.register(columns.Column("fake", "torch", "none", "test_workers", "Fake", env={"FAKE_ENV": "yes"}))
    yield column
    columns.unregister("fake")


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "runs.jsonl")


def spec(seed: int = 0, epochs: int = 1, **changes) -> RunSpec:
    return RunSpec(framework="fake", regularization="penalty", seed=seed, epochs=epochs, **changes)


def test_a_run_happens_in_a_worker_configured_from_the_column(fake, store):
    outcome = workers.execute([spec()], store, threads=3, workers=1)
    (record,) = outcome.records
    assert record["pid"] != os.getpid()
    assert record["registered"], "the worker registered the column it was given"
    assert record["fake_env"] == "yes" and record["omp"] == "3"  # l2compare.core.environment.configure
    assert record["threads"] == 3  # Run.set_threads
    assert outcome.ran == 1 and not outcome.errors and store.keys() == {spec().key}


def test_longest_job_first(fake, store):
    specs = [spec(seed=0, epochs=e) for e in (2, 5, 1, 4, 3)]
    outcome = workers.execute(specs, store, workers=1)
    by_start = sorted(outcome.records, key=lambda r: r["started"])
    assert [r["spec"]["epochs"] for r in by_start] == [5, 4, 3, 2, 1]
    assert [r["spec"]["epochs"] for r in outcome.records] == [2, 5, 1, 4, 3], "records in the specs' order"


def test_a_failed_run_is_reported_and_the_others_are_stored(fake, store):
    done = []
    outcome = workers.execute([spec(1), spec(13), spec(2)], store, workers=2, on_done=lambda what, r: done.append(r))
    assert outcome.errors == [("fake mlp penalty seed 13", "ValueError: unlucky seed")]
    assert [r["seed"] for r in outcome.records] == [1, 2] and outcome.ran == 2
    assert len(done) == 3 and done.count(None) == 1


def test_shared_runs_run_once_from_one_read_of_the_store(fake, store, monkeypatch):
    store.append({"key": spec(1).key, "seed": 1})
    reads = []
    original = RunStore._read
    monkeypatch.setattr(RunStore, "_read", lambda self: reads.append(1) or original(self))
    outcomes, jobs = workers.plan_runs({"a": [spec(1), spec(2), spec(2)], "b": [spec(2), spec(3)]}, store)
    assert len(jobs) == 2 and len(reads) == 1
    workers.schedule(jobs, workers=2)
    assert len(reads) == 1, "appends check under their lock; nothing re-reads the store"
    a, b = outcomes["a"], outcomes["b"]
    assert (a.ran, a.reused, b.ran, b.reused) == (1, 1, 1, 1)
    assert [r["seed"] for r in a.records] == [1, 2] and [r["seed"] for r in b.records] == [2, 3]
    assert a.records[1] is b.records[0]


def test_force_forgets_the_planned_runs_once(fake, store, monkeypatch):
    for seed in (1, 2, 9):
        store.append({"key": spec(seed).key, "seed": seed, "old": True})
    rewrites = []
    original = RunStore.replace
    monkeypatch.setattr(RunStore, "replace", lambda self, records: rewrites.append(1) or original(self, records))
    outcome = workers.execute([spec(1), spec(2)], store, force=True)
    assert len(rewrites) == 1 and outcome.ran == 2 and outcome.reused == 0
    assert not any(r.get("old") for r in outcome.records)
    assert [r.get("old") for r in store.records()] == [True, None, None]  # seed 9 was not planned: kept


def test_a_parity_mode_run_starts_from_the_keras_columns_weights(store):
    """The fake torch column needs another Keras backend, so its process cannot be Keras's: the
    weights cross from the Keras worker to it through the parent."""
    columns.register(columns.Column("fake", "torch", "none", "test_workers", "Fake", env={"KERAS_BACKEND": "jax"}))
    try:
        outcome = workers.execute([spec(mode="parity")], store, workers=2)
    finally:
        columns.unregister("fake")
    (record,) = outcome.records
    assert record["initial"] == ["hidden/bias", "hidden/kernel", "out/bias", "out/kernel"]


def test_columns_whose_environments_disagree_never_share_a_process():
    a = columns.register(columns.Column("fake_a", "torch", "none", "test_workers", "A", env={"X": "1"}))
    b = columns.register(columns.Column("fake_b", "torch", "none", "test_workers", "B", env={"X": "2"}))
    try:
        def job(*names):
            return workers.Job(names, 1.0, print, (), lambda r, s: None, print, label="job")

        kinds = workers._process_kinds([job("fake_a"), job("fake_b"), job("keras", "torch"), job("fake_b", "torch")])
        assert kinds == [(a, columns.KERAS, columns.TORCH), (b, columns.TORCH)]
        assert workers._kind_of(job("torch"), kinds) == kinds[0]   # torch alone: the first kind serving it
        assert workers._kind_of(job("fake_b", "torch"), kinds) == kinds[1]
        with pytest.raises(ValueError, match="environments that disagree"):
            workers._process_kinds([job("fake_a", "fake_b")])
    finally:
        columns.unregister("fake_a")
        columns.unregister("fake_b")
