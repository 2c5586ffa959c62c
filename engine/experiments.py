"""The experiments behind ``make results``: lists of run specs (and parity cases), by name.

All native-mode runs use the embedded ``digits`` data unless told otherwise, and
several seeds, so that every table reports mean ± std with a 95% interval.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from core.spec import OptimizerSpec, RunSpec

DEFAULT_SEEDS = (0, 1, 2)
ARTICLE_LAMBDA = 0.01
SWEEP_LAMBDAS = (0.0, 1e-4, 1e-3, 1e-2, 1e-1)
RECIPES = ("penalty", "coupled", "decoupled", "naive_wd", "naive_adamw")
# SGD at Keras's default lr on both sides: torch's default (1e-3) would compare learning
# rates, not regularizers. Adam's defaults agree on lr; ε stays each framework's own.
OPTIMIZERS = {"sgd": OptimizerSpec("sgd", lr=0.01), "adam": OptimizerSpec("adam")}


@dataclass(frozen=True)
class Settings:
    dataset: str = "digits"
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    epochs: int = 10


def _pair(model, l2, optimizer, recipe, s: Settings, seed, **extra) -> list[RunSpec]:
    """Keras `l2` and one torch recipe, same everything else."""
    common = dict(model=model, l2=l2, optimizer=optimizer, dataset=s.dataset, epochs=s.epochs, seed=seed, **extra)
    return [RunSpec(framework="keras", regularization="l2", **common),
            RunSpec(framework="torch", regularization=recipe, **common)]


def article(s: Settings) -> list[RunSpec]:
    """The article: three models × {λ=0.01, none} × {Keras l2, torch penalty}, Adam, native."""
    return [spec for model in ("mlp", "cnn", "mlp_bias") for l2 in (ARTICLE_LAMBDA, 0.0) for seed in s.seeds
            for spec in _pair(model, l2, OPTIMIZERS["adam"], "penalty", s, seed)]


def recipes(s: Settings) -> list[RunSpec]:
    """Every torch recipe against Keras l2 (λ=0.01), with SGD and with Adam, native mode."""
    specs = []
    for model in ("mlp", "cnn"):
        for opt in OPTIMIZERS.values():
            for seed in s.seeds:
                for recipe in RECIPES:
                    specs += _pair(model, ARTICLE_LAMBDA, opt, recipe, s, seed)
    return specs


def sweep(s: Settings) -> list[RunSpec]:
    """λ ∈ {0, 1e-4, 1e-3, 1e-2, 1e-1} for mlp and cnn, Keras l2 and torch penalty, Adam."""
    return [spec for model in ("mlp", "cnn") for l2 in SWEEP_LAMBDAS for seed in s.seeds
            for spec in _pair(model, l2, OPTIMIZERS["adam"], "penalty", s, seed)]


# name -> (description, spec builder). `parity` is not a list of RunSpecs: see parity/grid.py.
EXPERIMENTS: dict[str, tuple[str, Callable[[Settings], list[RunSpec]]]] = {
    "article": ("the article's three models, λ=0.01 vs none, Keras l2 vs torch penalty, Adam", article),
    "recipes": ("every torch recipe against Keras l2, SGD and Adam, mlp and cnn", recipes),
    "sweep": ("λ from 0 to 0.1, mlp and cnn, both frameworks", sweep),
}
ALL = ("article", "recipes", "sweep", "parity")
