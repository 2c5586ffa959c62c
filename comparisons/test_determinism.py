"""The same spec and seed give identical run records twice in a row, in each framework.

Only timings may differ. Each framework runs its worker function twice in this
process (the harness runs them in worker processes; a fresh process is the easier
case: no state left over from the first run).
"""
import pytest

from l2compare.core.records import finish
from l2compare.core.spec import OptimizerSpec, RunSpec

TIMINGS = {"wall_time_s", "steps_per_s", "created"}


def _without_timings(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in TIMINGS}


def _run_twice(framework, spec):
    run = pytest.importorskip(f"{framework}_impl.worker").Run()
    initial = None
    if spec.mode == "parity" and framework == "torch":
        from keras_impl.worker import Run as KerasRun

        initial = KerasRun().initial_weights(spec.replace(framework="keras", regularization="l2").to_dict())
    return [finish(spec, run.run(spec.to_dict(), initial)) for _ in range(2)]


@pytest.mark.parametrize("model", ["mlp", "cnn"])
@pytest.mark.parametrize("framework,regularization", [("keras", "l2"), ("torch", "penalty"), ("torch", "naive_adamw")])
def test_same_spec_and_seed_give_identical_records(framework, regularization, model):
    spec = RunSpec(model=model, framework=framework, regularization=regularization, epochs=2, seed=3,
                   optimizer=OptimizerSpec("adam"))
    first, second = _run_twice(framework, spec)
    assert first["status"] == "ok"
    assert _without_timings(first) == _without_timings(second), "a rerun changed the record"


def test_parity_mode_torch_is_reproducible_too():
    spec = RunSpec(model="mlp", framework="torch", regularization="coupled", mode="parity", epochs=2, seed=1,
                   optimizer=OptimizerSpec("sgd", lr=0.01, momentum=0.9))
    first, second = _run_twice("torch", spec)
    assert _without_timings(first) == _without_timings(second)


def test_a_different_seed_gives_a_different_record():
    """The guard can fail: the comparison above is not vacuous."""
    run = pytest.importorskip("torch_impl.worker").Run()
    spec = RunSpec(model="mlp", framework="torch", regularization="penalty", epochs=1, seed=0)
    a = run.run(spec.to_dict())
    b = run.run(spec.replace(seed=1).to_dict())
    assert a["norms"] != b["norms"]
