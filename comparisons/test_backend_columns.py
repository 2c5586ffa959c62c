"""Keras on JAX and on torch as framework columns: one registry entry each (l2compare.core.columns), run by the
engine in worker processes of their own, recorded with the backend that ran them."""
import math

from l2compare.core import columns
from l2compare.core.spec import OptimizerSpec, RunSpec


def test_the_backends_are_registered_columns():
    got = {c.name: (c.framework, c.backend, c.env.get("KERAS_BACKEND")) for c in columns.all_columns()}
    assert got["keras"] == ("keras", "tensorflow", "tensorflow")
    assert got["keras_jax"] == ("keras", "jax", "jax") and got["keras_torch"] == ("keras", "torch", "torch")


def test_keras_on_jax_and_on_torch_run_through_the_engine(tmp_path, capsys):
    """Over 20 s: a worker process per Keras backend (three framework imports), two epochs each."""
    from l2compare.engine.store import RunStore
    from l2compare import pipeline

    common = dict(model="mlp", regularization="l2", l2=0.01, optimizer=OptimizerSpec("adam"), dataset="article",
                  epochs=2, seed=0)
    specs = [RunSpec(framework=name, **common) for name in ("keras", "keras_jax", "keras_torch")]
    assert pipeline.compare(specs, tmp_path, progress=False) == 0
    records = {r["framework"]: r for r in RunStore(tmp_path / "runs.jsonl").records()}
    assert {name: r["backend"] for name, r in records.items()} == {
        "keras": "tensorflow", "keras_jax": "jax", "keras_torch": "torch"}
    assert "jax" in records["keras_jax"]["versions"] and "torch" in records["keras_torch"]["versions"]
    # native mode: each backend's own jit_compile="auto" (XLA on JAX only); TensorFlow's is off (train.compile_model)
    assert {name: r["machine"]["jit_compile"] for name, r in records.items()} == {
        "keras": False, "keras_jax": True, "keras_torch": False}
    for r in records.values():
        assert r["status"] == "ok" and len(r["history"]) == 2
        assert all(math.isfinite(v) for v in r["history"][-1].values() if isinstance(v, float))
    # Native mode: each backend draws its own initial weights from the same seed, so the final
    # weight norms differ between backends, while each is finite and positive.
    norms = {name: r["norms"] for name, r in records.items()}
    assert all(v > 0 for n in norms.values() for v in n.values() if isinstance(v, float))


def test_parity_mode_starts_every_backend_from_tensorflows_initial_weights(tmp_path):
    """Parity mode: Keras on JAX and on torch start from the weights Keras on TensorFlow draws
    (columns.PARITY_SOURCE), moved through the parent; native mode, from their own initializers. Over 20 s:
    a worker process per backend, each importing its framework, for one epoch per mode."""
    from l2compare.engine import workers
    from l2compare.engine.store import RunStore

    common = dict(model="mlp", regularization="l2", l2=0.01, optimizer=OptimizerSpec("sgd", lr=0.01),
                  dataset="article", epochs=1, seed=3)
    specs = [RunSpec(framework=name, mode=mode, **common)
             for name in ("keras", "keras_jax", "keras_torch") for mode in ("native", "parity")]
    outcome = workers.execute(specs, RunStore(tmp_path / "runs.jsonl"), workers=2)
    assert not outcome.errors
    initial = {(r["spec"]["framework"], r["spec"]["mode"]): r["initial_norms"] for r in outcome.records}
    source = initial[("keras", "native")]
    for name in ("keras_jax", "keras_torch"):
        assert initial[(name, "parity")] == source, name   # the same weights, to the last bit of their norms
        assert initial[(name, "native")] != source, name   # each backend's own random stream
