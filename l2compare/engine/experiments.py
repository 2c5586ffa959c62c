"""The experiments behind ``make results``: lists of run specs (and parity cases), by name,
and ``plan``, which turns any of them into the jobs of one schedule (``l2compare.engine.workers``).

All native-mode runs use the embedded ``digits`` data unless told otherwise, run in every
framework column (Keras on TensorFlow, JAX and torch; native PyTorch) unless told otherwise, and
use several seeds, so that every table reports mean ± std with a 95% interval.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from l2compare.core import columns
from l2compare.core.names import PORTS
from l2compare.core.spec import OptimizerSpec, RunSpec
from l2compare.engine import workers
from l2compare.engine.store import RunStore
from l2compare.parity import grid
from l2compare.parity.cases import keras_side

RUNS, PARITY, VERIFY = "runs.jsonl", "parity.jsonl", "verify.jsonl"  # the stores under a results folder

DEFAULT_SEEDS = (0, 1, 2)
ARTICLE_LAMBDA = 0.01
SWEEP_LAMBDAS = (0.0, 1e-4, 1e-3, 1e-2, 1e-1)
# SGD at Keras's default lr on both sides: torch's default (1e-3) would compare learning
# rates, not regularizers. Adam's defaults agree on lr; ε stays each framework's own.
OPTIMIZERS = {"sgd": OptimizerSpec("sgd", lr=0.01), "adam": OptimizerSpec("adam")}


@dataclass(frozen=True)
class Settings:
    """What every experiment shares. ``frameworks``: the framework columns (``l2compare.core.columns``) that
    run, all registered ones by default: Keras on each backend with its ``l2``, native PyTorch with
    the recipe the experiment names."""

    dataset: str = "digits"
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    epochs: int = 10
    frameworks: tuple[str, ...] = field(default_factory=columns.names)


def _sides(model, l2, optimizer, recipe, s: Settings, seed, **extra) -> list[RunSpec]:
    """The same run in every column of ``s``: Keras `l2` on each Keras backend, ``recipe`` in torch."""
    common = dict(model=model, l2=l2, optimizer=optimizer, dataset=s.dataset, epochs=s.epochs, seed=seed, **extra)
    return [RunSpec(framework=name, regularization="l2" if columns.get(name).framework == "keras" else recipe, **common)
            for name in s.frameworks]


def article(s: Settings) -> list[RunSpec]:
    """The article: three models × {λ=0.01, none} × {Keras l2 on each backend, torch penalty}, Adam, native."""
    return [spec for model in ("mlp", "cnn", "mlp_bias") for l2 in (ARTICLE_LAMBDA, 0.0) for seed in s.seeds
            for spec in _sides(model, l2, OPTIMIZERS["adam"], "penalty", s, seed)]


def recipes(s: Settings) -> list[RunSpec]:
    """Every torch recipe against Keras l2 (λ=0.01; on each backend), with SGD and with Adam, native mode."""
    specs = []
    for model in ("mlp", "cnn"):
        for opt in OPTIMIZERS.values():
            for seed in s.seeds:
                for recipe in PORTS:
                    specs += _sides(model, ARTICLE_LAMBDA, opt, recipe, s, seed)
    return specs


def sweep(s: Settings) -> list[RunSpec]:
    """λ ∈ {0, 1e-4, 1e-3, 1e-2, 1e-1} for mlp and cnn, Keras l2 on each backend and torch penalty, Adam."""
    return [spec for model in ("mlp", "cnn") for l2 in SWEEP_LAMBDAS for seed in s.seeds
            for spec in _sides(model, l2, OPTIMIZERS["adam"], "penalty", s, seed)]


# Sized for a cluster (``--executor ray``; README): 10 λ × 3 models × every column × the seeds asked
# for (the README's command: 10 seeds, MNIST from npz:). Not part of `run all`.
SWEEP_LARGE_LAMBDAS = (0.0, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)


def sweep_large(s: Settings) -> list[RunSpec]:
    """λ over ten values for mlp, cnn and mlp_bias, Keras l2 on each backend and torch penalty, Adam."""
    return [spec for model in ("mlp", "cnn", "mlp_bias") for l2 in SWEEP_LARGE_LAMBDAS for seed in s.seeds
            for spec in _sides(model, l2, OPTIMIZERS["adam"], "penalty", s, seed)]


# name -> (description, spec builder). `parity` is not a list of RunSpecs: see l2compare/parity/grid.py.
EXPERIMENTS: dict[str, tuple[str, Callable[[Settings], list[RunSpec]]]] = {
    "article": ("the article's three models, λ=0.01 vs none, Keras l2 (each backend) vs torch penalty, Adam", article),
    "recipes": ("every torch recipe and Keras backend against Keras l2 on TensorFlow, SGD and Adam, mlp and cnn", recipes),
    "sweep": ("λ from 0 to 0.1, mlp and cnn, every framework column", sweep),
    "sweep_large": ("10 λ × 3 models × every column × --seeds: sized for a cluster (--executor ray); not in `all`",
                    sweep_large),
}
PARITY_NAME = "parity"
VERIFY_NAME = "verify"   # the porter's family showcase (l2compare.porter.verify.showcase), for PORTING.md
ALL = ("article", "recipes", "sweep", PARITY_NAME, VERIFY_NAME)   # `run all`
NAMES = ALL + ("sweep_large",)   # every experiment `run` takes


# Seconds of one parity cell, by (model, dtype): float32 adds the one-step comparison and a
# second torch run (the envelope), and costs a cnn most (its float64 decision margins).
# A job also pays once for the Keras trajectory its cells share. Measured like
# ``workers.EPOCH_S``; only the order of the jobs depends on them.
PARITY_CELL_S = {("cnn", "float32"): 5.5, ("cnn", "float64"): 1.5, ("mlp", "float32"): 0.65, ("mlp", "float64"): 0.1}
KERAS_TRAJECTORY_S = {"cnn": 0.8, "mlp": 0.4}
# A parity job on another Keras backend against the same job on TensorFlow (measured on one row each).
PARITY_BACKEND_FACTOR = {"keras_jax": 2.1, "keras_torch": 2.0}
VERIFY_CELL_S = 8.0  # one showcase model, 20 steps, float64 and float32 (measured 3-15 s on this machine)


def plan_parity(store: RunStore, *, force: bool = False, on_done=None,
                frameworks: tuple[str, ...] | None = None) -> tuple[workers.Outcome, list[workers.Job]]:
    """The parity cells' outcome and the jobs that run the cells not stored yet: one job per
    Keras trajectory, so that the cells comparing against it reuse it (``l2compare.parity.runner``). The
    grids of the Keras backends among ``frameworks`` (all by default) are included; each of their
    jobs follows one in the Keras-on-TensorFlow worker that draws the weights it starts from."""
    cells = grid.all_cells(frameworks)
    stored, todo = store.resume([c.key for c in cells], force=force)
    outcome = workers.Outcome(keys=[c.key for c in cells], stored=stored, reused=len(cells) - len(todo))
    groups: dict = {}
    left = set(todo)
    for cell in cells:
        if cell.key in left:
            left.discard(cell.key)
            groups.setdefault(keras_side(cell.case), []).append(cell)
    return outcome, [_parity_job(group, store, outcome, on_done) for group in groups.values()]


def _parity_job(cells: list[grid.Cell], store: RunStore, outcome: workers.Outcome, on_done) -> workers.Job:
    keras_column = cells[0].case.keras_column

    def kind(cell: grid.Cell) -> str:
        return "cnn" if cell.case.model == "cnn" else "mlp"

    def label(cell: grid.Cell) -> str:
        backend = "" if keras_column == columns.PARITY_SOURCE else f" ({columns.get(keras_column).label})"
        return f"parity{backend} {cell.row} | {cell.column} | {cell.dtype}"

    def done(records: list[dict], seconds: float) -> None:
        outcome.seconds += seconds
        for cell, record in zip(cells, records):
            outcome.add(record, store, label(cell), on_done)

    def failed(message: str) -> None:
        for cell in cells:
            outcome.fail(label(cell), message, on_done)

    cost = (KERAS_TRAJECTORY_S[kind(cells[0])] + sum(PARITY_CELL_S[(kind(c), c.dtype)] for c in cells)) \
        * PARITY_BACKEND_FACTOR.get(keras_column, 1.0)
    job_columns = (keras_column, "torch")

    def cells_job(initial) -> workers.Job:
        return workers.Job(job_columns, cost, grid.run_cells, (cells, initial), done, failed, label(cells[0]))

    if keras_column == columns.PARITY_SOURCE:
        return cells_job(None)

    def weights_done(initial, seconds: float) -> workers.Job:
        outcome.seconds += seconds
        return cells_job(initial)

    return workers.Job((columns.PARITY_SOURCE,), cost + 0.3, grid.source_initial, (cells[0],), weights_done, failed,
                       f"{columns.PARITY_SOURCE} initial weights for {label(cells[0])}", later=job_columns)


def _run_verify(cell) -> dict:
    """In a worker process (it imports both frameworks): one showcase cell's record."""
    from l2compare.porter.verify import showcase

    return showcase.run_cell(cell)


def plan_verify(store: RunStore, *, force: bool = False, on_done=None) -> tuple[workers.Outcome, list[workers.Job]]:
    """The showcase's verify cells (``l2compare.porter.verify.showcase``): one job each, in the Keras+torch workers."""
    from l2compare.porter.verify import showcase

    cells = showcase.cells()
    stored, todo = store.resume([c.key for c in cells], force=force)
    outcome = workers.Outcome(keys=[c.key for c in cells], stored=stored, reused=len(cells) - len(todo))
    jobs = []
    for cell in (c for c in cells if c.key in set(todo)):
        def done(record: dict, seconds: float, cell=cell) -> None:
            outcome.seconds += seconds
            outcome.add(record, store, cell.label, on_done)

        def failed(message: str, cell=cell) -> None:
            outcome.fail(cell.label, message, on_done)

        jobs.append(workers.Job(("keras", "torch"), VERIFY_CELL_S, _run_verify, (cell,), done, failed, cell.label))
    return outcome, jobs


def plan(names: list[str], settings: Settings, out: Path, *, force: bool = False,
         on_done=None, on_reused=None) -> tuple[dict[str, workers.Outcome], list[workers.Job]]:
    """An outcome per name in ``names`` (``parity``: the parity table) and the jobs, for one
    schedule (``workers.schedule``), that run what ``out``'s stores lack (all of it with
    ``force``). A run two experiments share runs once, for the first that names it.

    ``on_reused(record)``: another process writing to ``out`` (a second ``l2compare run``, a Ray
    driver) stored one of these runs first; its record is kept (``RunStore``), and this is called."""
    planned = {name: EXPERIMENTS[name][1](settings) for name in names if name in EXPERIMENTS}
    outcomes, jobs = workers.plan_runs(planned, RunStore(out / RUNS, on_reused), force=force, on_done=on_done)
    if PARITY_NAME in names:
        outcomes[PARITY_NAME], more = plan_parity(RunStore(out / PARITY, on_reused), force=force, on_done=on_done,
                                                  frameworks=settings.frameworks)
        jobs += more
    if VERIFY_NAME in names:
        outcomes[VERIFY_NAME], more = plan_verify(RunStore(out / VERIFY, on_reused), force=force, on_done=on_done)
        jobs += more
    return outcomes, jobs
