"""The bench loop, written once for every framework column (``l2compare.engine.bench_jobs`` runs it in a worker).

For one model: ms/step of the suite's training loop (``TrainingRun.timed``: the same template
that trains every run) against the framework's minimal hand-written loop (``minimal_loop``),
and of each regularization against none. Every variant gets a fresh model and one untimed
warm-up epoch on it, in both frameworks alike; variants are interleaved within each repeat,
so that machine noise hits them alike (the report takes medians of per-repeat ratios).
"""
from __future__ import annotations

from l2compare.core.data.sets import load
from l2compare.core.names import REFERENCE, regularizations
from l2compare.core.seeds import epoch_orders
from l2compare.core.spec import OptimizerSpec, RunSpec
from l2compare.core.training import TrainingRun

LAMBDA = 0.01  # the article's λ
WEIGHT_DECAY = 0.004  # Keras AdamW's default, for the `wd` config


def _spec(column: str, model_name: str, regularization: str, batch_size: int, seed: int) -> RunSpec:
    wd = WEIGHT_DECAY if regularization == "wd" else None
    return RunSpec(model=model_name, framework=column, regularization=regularization, l2=LAMBDA,
                   optimizer=OptimizerSpec("adam", weight_decay=wd), batch_size=batch_size, seed=seed)


def measure(run: TrainingRun, column: str, model_name: str, *, repeats: int = 5, epochs: int = 2,
            batch_size: int = 32, dataset: str = "digits") -> dict[str, list[float]]:
    """ms/step per variant and repeat: ``minimal`` and ``suite`` (both with the article's L2:
    Keras ``l2`` / torch ``penalty``), and ``recipe:<name>`` for every regularization of the
    framework's vocabulary (the suite's loop)."""
    data = load(dataset)
    x, y = data.x_train, data.y_train
    steps = epochs * -(-len(x) // batch_size)
    reference = REFERENCE[run.framework]
    times: dict[str, list[float]] = {}
    for rep in range(repeats):
        order, warm = epoch_orders(len(x), epochs, rep), epoch_orders(len(x), 1, 1000 + rep)
        variants = {"minimal": lambda: run.minimal_loop(model_name, x, y, order, warm, batch_size),
                    "suite": lambda: run.timed(_spec(column, model_name, reference, batch_size, rep),
                                               x, y, order, warm)}
        for name in regularizations(run.framework):
            variants[f"recipe:{name}"] = (lambda name: lambda: run.timed(
                _spec(column, model_name, name, batch_size, rep), x, y, order, warm))(name)
        for name, timed in variants.items():
            run.seed(rep)
            times.setdefault(name, []).append(1e3 * timed() / steps)
    return times
