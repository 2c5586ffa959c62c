"""Timing of torch_impl's training loop against a minimal hand-written one (mirror: keras_impl/bench.py).

Called in a worker process by ``engine.bench``; returns plain dicts of
milliseconds per step. Variants are interleaved within each repeat, so that
machine noise hits them alike; the caller takes medians of per-repeat ratios.
"""
from __future__ import annotations

import time

import numpy as np
import torch
from torch.nn import functional as F

import torch_impl
from core.data import load
from core.seeds import epoch_orders
from core.spec import OptimizerSpec
from torch_impl import optim, recipes, seeding, train
from torch_impl.l2 import penalty as l2_penalty

RECIPES = ("none", "penalty", "coupled", "decoupled", "naive_wd", "naive_adamw")


def _minimal_loop(model, x, y, order, batch_size, with_penalty: bool) -> None:
    """What a user would write: Adam, cross-entropy (+ the L2 penalty), nothing else."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for perm in order:
        perm = torch.as_tensor(perm)
        for start in range(0, len(perm), batch_size):
            idx = perm[start:start + batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            if with_penalty:
                loss = loss + l2_penalty(model)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


def _suite_loop(model, x, y, order, batch_size, recipe_name: str) -> None:
    recipe = recipes.build(recipe_name, model, l2=0.01)
    opt = optim.make_optimizer(model, recipe, OptimizerSpec("adam"), exact=False)
    train.fit(model, opt, x, y, batch_size=batch_size, order=order, recipe=recipe)


def measure(model_name: str, *, repeats: int = 5, epochs: int = 2, batch_size: int = 32,
            dataset: str = "digits") -> dict[str, list[float]]:
    """ms/step per variant and repeat: ``minimal`` and ``suite`` (both with the L2 penalty, the
    article's recipe) and ``recipe:<name>`` for each recipe (the suite's loop)."""
    data = load(dataset)
    x = train.to_tensor(data.x_train, model_name, torch.float32)
    y = torch.as_tensor(data.y_train)
    steps = epochs * -(-len(x) // batch_size)
    variants = {
        "minimal": lambda m, o: _minimal_loop(m, x, y, o, batch_size, with_penalty=True),
        "suite": lambda m, o: _suite_loop(m, x, y, o, batch_size, "penalty"),
        **{f"recipe:{r}": (lambda r: lambda m, o: _suite_loop(m, x, y, o, batch_size, r))(r) for r in RECIPES},
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for rep in range(repeats + 1):  # repeat 0 warms up caches and allocators, not recorded
        order = epoch_orders(len(x), epochs, rep)
        for name, loop in variants.items():
            seeding.seed_everything(rep)
            model = torch_impl.build_model(model_name, l2=0.01)
            start = time.perf_counter()
            loop(model, order)
            elapsed = time.perf_counter() - start
            if rep:
                times[name].append(1e3 * elapsed / steps)
    return times


def versions() -> dict:
    return {"torch": torch.__version__, "numpy": np.__version__}
