"""Run one RunSpec on the torch side (mirror: keras_impl/worker.py).

The harness calls these in a worker process of their own; they take and return
only plain dicts and NumPy arrays.
"""
from __future__ import annotations

import time

import numpy as np
import torch

import torch_impl
from comparisons import records
from comparisons.data import load
from comparisons.seeds import derive, epoch_orders
from comparisons.spec import RunSpec
from torch_impl import optim, recipes, seeding, train
from torch_impl.weights import export_weights, import_weights

FRAMEWORK = "torch"


def versions() -> dict:
    return {"torch": torch.__version__, "numpy": np.__version__}


def device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _build(spec: RunSpec) -> torch.nn.Module:
    seeding.seed_everything(derive(spec.seed, "init"))
    # The mirror carries Keras's L2 placement (reported as the penalty), except for `none`.
    l2 = 0.0 if spec.regularization == "none" else spec.l2
    return torch_impl.build_model(spec.model, l2=l2, dtype=getattr(torch, spec.dtype)).to(device())


def initial_weights(spec_dict: dict) -> dict[str, np.ndarray]:
    """torch's own initial weights for this spec (native mode)."""
    return export_weights(_build(RunSpec.from_dict(spec_dict)))


def run(spec_dict: dict, initial: dict[str, np.ndarray] | None = None) -> dict:
    """Train as the spec says. Parity mode: start from ``initial`` (Keras's) with Keras-exact
    optimizers; native mode: torch's initializers and stock optimizers."""
    spec = RunSpec.from_dict(spec_dict)
    exact = spec.mode == "parity"
    if exact and initial is None:
        raise ValueError("parity mode needs Keras's initial weights")
    data = load(spec.dataset)
    dtype, dev = getattr(torch, spec.dtype), device()
    x, x_test = (train.to_tensor(a, spec.model, dtype, dev) for a in (data.x_train, data.x_test))
    y, y_test = (torch.as_tensor(a, device=dev) for a in (data.y_train, data.y_test))
    model = _build(spec)
    if exact:
        import_weights(model, initial)
    defaults = optim.KERAS_DEFAULTS if exact else optim.TORCH_DEFAULTS
    recipe = recipes.for_optimizer(spec.regularization, model, spec.optimizer, l2=spec.l2,
                                   adamw_default=defaults["adamw"]["weight_decay"])
    optimizer = optim.make_optimizer(model, recipe, spec.optimizer, exact=exact)
    order = epoch_orders(len(x), spec.epochs, spec.seed)
    diverged, history = None, []
    start = time.perf_counter()
    try:
        train.fit(model, optimizer, x, y, batch_size=spec.batch_size, order=order, recipe=recipe, x_test=x_test,
                  y_test=y_test, on_epoch=records.epoch_recorder(spec.model, history, lambda: export_weights(model)))
    except records.Diverged as exc:
        diverged = str(exc)
    wall = time.perf_counter() - start
    steps = len(history) * -(-len(x) // spec.batch_size)
    out = records.summary(spec.model, history, export_weights(model), wall, steps, diverged)
    return {"framework": FRAMEWORK, "backend": "torch", "versions": versions(), "device": dev, **out}
