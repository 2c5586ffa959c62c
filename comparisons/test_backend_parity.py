"""Parity on every Keras backend: which torch recipe is the same computation as Keras on JAX, on torch.

The grid's cells (``l2compare.parity.grid.backend_cells``) with Keras's side on the JAX or torch backend, started
from the initial weights Keras on TensorFlow draws (a job in the TensorFlow worker hands them to the
backend's worker through the parent, ``l2compare.engine.experiments.plan_parity``). Run through the engine, as
``make results`` runs them: one worker process per backend, as Keras picks its backend at import.
"""
import pytest

from l2compare.core.verdicts import EXACT_FLOAT64
from l2compare.engine import experiments, workers
from l2compare.engine.store import RunStore
from l2compare.parity import grid
from l2compare.parity.cases import keras_side

ROW, MOMENTUM = "l2 on kernels / sgd", "l2 on kernels / momentum"
RECIPES = ("penalty", "naive_wd")


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> dict:
    """(keras column, recipe, dtype) -> record, for the mlp / SGD row on each other backend; and
    (keras column, row, dtype) -> record for the penalty recipe on the momentum row on JAX. Over 20 s, once
    per module: ten parity cells (52 steps each, float32 ones with their float64 reference steps) in a
    worker process per backend, the fewest that show each backend's exact recipe and mistake."""
    cells = [c for name in ("keras_jax", "keras_torch") for c in grid.cells(name) if c.row == ROW and c.column in RECIPES]
    cells += [c for c in grid.cells("keras_jax") if c.row == MOMENTUM and c.column == "penalty"]
    groups: dict = {}
    for cell in cells:
        groups.setdefault(keras_side(cell.case), []).append(cell)
    store, outcome = RunStore(tmp_path_factory.mktemp("parity") / "parity.jsonl"), workers.Outcome()
    workers.schedule([experiments._parity_job(g, store, outcome, None) for g in groups.values()], workers=2)
    assert not outcome.errors, outcome.errors
    return {(r["keras_column"], r["column"] if r["row"] == ROW else r["row"], r["dtype"]): r for r in store.records()}


def test_each_backend_grid_ran_on_its_backend_from_tensorflows_weights(records):
    assert len(records) == 2 * len(RECIPES) * 2 + 2
    assert {r["backend"] for (name, _, _), r in records.items() if name == "keras_jax"} == {"jax"}
    assert {r["backend"] for (name, _, _), r in records.items() if name == "keras_torch"} == {"torch"}
    # The torch recipe's start is the Keras side's start: the float64 step-1 difference of the exact recipe is
    # float64 rounding on JAX. From different initial weights it would be the size of the weights (~0.1).
    assert records[("keras_jax", "penalty", "float64")]["trajectory"][0] <= EXACT_FLOAT64


def test_keras_on_jax_is_ported_exactly_by_the_same_recipe_as_on_tensorflow(records):
    """JAX with x64: float64 agrees to float64 rounding (measured 1.1e-16), float32 within each side's own
    rounding at every step; the mistake stays wrong (measured 9.5e-3 in float64)."""
    assert records[("keras_jax", "penalty", "float64")]["verdict"] == "exact"
    assert records[("keras_jax", "penalty", "float32")]["verdict"] == "exact"
    assert records[("keras_jax", "naive_wd", "float64")]["verdict"] == "wrong"
    assert records[("keras_jax", "naive_wd", "float32")]["verdict"] == "wrong"


def test_a_port_of_keras_on_jax_casts_hyperparameters_exactly(records):
    """Keras on JAX casts momentum 0.9 to float64 exactly, where TensorFlow rounds it through float32
    (test_backend_facts): the float32 verdict's float64 reference step is exact only if the torch side
    casts as the backend does (l2compare.parity.sides.keras_casts). Measured: exact, one-step median 1.6e-7; with
    TensorFlow's rounding instead, the float64 references differ by 5.2e-8 and the cell reads close."""
    cell = records[("keras_jax", MOMENTUM, "float32")]
    assert cell["verdict"] == "exact", cell["onestep"]
    assert cell["onestep"]["cross64_max"] < 1e-12
    assert records[("keras_jax", MOMENTUM, "float64")]["verdict"] == "exact"


def test_keras_on_torch_is_close_not_exact_in_float64_because_its_dense_layer_rounds_like_float32(records):
    """The torch backend computes a float64 Dense matmul with float32 rounding (test_backend_facts), so no
    float64 recipe can be exact against it: measured max |Δw| 1.3e-8 over 52 steps, float32-sized, not the
    1e-12 of an exact cell nor the 9.5e-3 of the mistake."""
    penalty = records[("keras_torch", "penalty", "float64")]
    assert penalty["verdict"] == "close"
    assert 1e-10 < penalty["score"] < 1e-6, penalty["score"]
    assert records[("keras_torch", "naive_wd", "float64")]["verdict"] == "wrong"
    assert records[("keras_torch", "naive_wd", "float32")]["verdict"] == "wrong"


def test_keras_on_torch_reads_close_in_float32_because_its_own_float64_step_is_no_floor(records):
    """float32 is judged against each side's float32-vs-float64 error of a step; the torch backend's float64
    step rounds like float32 inside Dense, so Keras's own error reads near zero and the penalty recipe's
    one-step difference (measured median 8.9e-8 of max |w|, the same as on JAX, where it is exact) exceeds
    the floor: close, not exact. The mistake's is 1.0e-4, a thousand times more."""
    penalty, mistake = records[("keras_torch", "penalty", "float32")], records[("keras_torch", "naive_wd", "float32")]
    assert penalty["verdict"] == "close"
    assert penalty["score"] < 1e-6 < 1e-5 < mistake["score"], (penalty["score"], mistake["score"])
    jax = records[("keras_jax", "penalty", "float32")]
    assert jax["verdict"] == "exact" and penalty["score"] < 4 * jax["score"]


def test_a_backend_trajectory_needs_tensorflows_initial_weights():
    from l2compare.parity.sides import keras_trajectory

    case = keras_side(next(c for c in grid.cells("keras_torch") if c.dtype == "float64").case)
    with pytest.raises(RuntimeError, match="keras column's initial weights were not given"):
        keras_trajectory(case)


def test_the_backend_grids_are_the_reference_grid_on_another_column():
    reference = [(c.row, c.column, c.dtype) for c in grid.cells() if not c.extra]
    for name in ("keras_jax", "keras_torch"):
        cells = grid.cells(name)
        assert [(c.row, c.column, c.dtype) for c in cells] == reference
        assert {c.case.keras_column for c in cells} == {name}
    assert len(grid.all_cells(("keras", "torch"))) == len(grid.cells()) + len(grid.study_cells())
    assert len(grid.all_cells()) == len(grid.cells()) + len(grid.study_cells()) + 2 * len(reference)
