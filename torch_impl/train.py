"""A training loop that mirrors Keras's ``model.fit`` (mirror: keras_impl/train.py).

Per batch it minimizes the mean data loss plus the L2 penalty at the pre-update
weights, keeps the partial last batch, and reports per epoch the batch-size-
weighted means that Keras's history reports. The batch order is the caller's:
one index permutation per epoch, so that both frameworks see identical batches.
"""
from __future__ import annotations

import contextlib
from typing import Callable, ContextManager, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from l2compare.core.training import FitResult
from torch_impl import l2
from torch_impl.optim import export_state
from torch_impl.recipes import Recipe
from torch_impl.weights import export_weights

__all__ = ["FitResult", "accuracy", "as_inputs", "fit", "precision", "train_step"]


def as_inputs(x: np.ndarray, model_name: str, dtype: str, device=None) -> torch.Tensor:
    """NumPy images (N, 28, 28, 1) to the model's input: (N, 784) or NCHW (N, 1, 28, 28)."""
    if model_name == "cnn":
        x = x.transpose(0, 3, 1, 2)  # NHWC -> NCHW
    else:
        x = x.reshape(len(x), -1)
    dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    return torch.as_tensor(np.ascontiguousarray(x), dtype=dtype, device=device or "cpu")


def precision(dtype: str) -> ContextManager:
    """Nothing global to set: torch takes dtypes per tensor (mirror: keras_impl.train.precision)."""
    return contextlib.nullcontext()


def _penalty_fn(model: nn.Module, coefficients: dict[str, float]) -> Callable[[], torch.Tensor] | None:
    if not coefficients:
        return None
    pairs = l2.terms(model, coefficients)
    return lambda: l2.penalty_of(pairs)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1024) -> float:
    model.eval()
    correct = sum(int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum()) for i in range(0, len(x), batch))
    model.train()
    return correct / len(x)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    """One optimizer step on one batch: the step ``fit`` takes (mirror: keras_impl.train.train_step)."""
    _step(model, optimizer, x, y, *_penalties(model, optimizer.recipe))


def _step(model: nn.Module, optimizer: torch.optim.Optimizer, xb: torch.Tensor, yb: torch.Tensor,
          in_loss: Callable[[], torch.Tensor] | None, reported: Callable[[], torch.Tensor] | None):
    """One optimizer step on one batch, as Keras's ``train_step``: -> (logits, data loss, penalty).

    ``in_loss`` is the penalty minimized with the data loss (recipe ``penalty``); ``reported``
    the penalty only measured (other recipes), both at the pre-update weights.
    """
    logits = model(xb)
    data_loss = F.cross_entropy(logits, yb)  # mean over the batch; softmax on logits
    if in_loss is not None:
        pen = in_loss()
        loss = data_loss + pen  # penalty at the pre-update weights, not divided by batch size
    else:
        with torch.no_grad():
            pen = reported() if reported is not None else data_loss.new_zeros(())
        loss = data_loss
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return logits, data_loss, pen


def _penalties(model: nn.Module, recipe: Recipe | None):
    """(penalty minimized in the loss, penalty reported) for ``train_step``: the reported one is
    Keras's Σ λ·Σw² over the model's L2 coefficients whatever the recipe puts in the loss."""
    in_loss = _penalty_fn(model, recipe.penalty if recipe is not None else {})
    return in_loss, in_loss if in_loss is not None else _penalty_fn(model, l2.coefficients(model))


def fit(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, *,
        batch_size: int, order: Sequence[np.ndarray], x_test: torch.Tensor | None = None,
        y_test: torch.Tensor | None = None, capture_steps: bool = False,
        on_epoch: Callable[[int, dict], None] | None = None) -> FitResult:
    """Train ``model`` over ``order`` (one permutation of range(len(x)) per epoch).

    The optimizer's recipe (``optim.make_optimizer``) says what is added to the loss
    (``recipe.penalty``); coupled and decoupled decay live in the optimizer itself.
    The history's ``penalty`` is always Keras's Σ λ·Σw² over ``model``'s L2 coefficients at the
    pre-update weights (measured, not minimized, when the recipe does not put it in the loss),
    so that ``loss`` means what Keras's history means whatever the recipe.
    """
    in_loss, reported = _penalties(model, getattr(optimizer, "recipe", None))
    result = FitResult(steps=[] if capture_steps else None, states=[] if capture_steps else None)
    model.train()
    for epoch, perm in enumerate(order):
        perm_t = torch.as_tensor(perm, device=x.device)
        # Accumulate on-device (no per-step sync); weighted by batch size, as Keras's metrics.
        sums = torch.zeros(4, dtype=torch.float64, device=x.device)  # loss, data, penalty, correct
        for start in range(0, len(perm), batch_size):
            idx = perm_t[start:start + batch_size]  # the partial last batch is kept
            xb, yb = x[idx], y[idx]
            logits, data_loss, pen = _step(model, optimizer, xb, yb, in_loss, reported)
            with torch.no_grad():
                n = len(idx)
                sums += torch.stack([(data_loss.detach() + pen.detach()) * n, data_loss.detach() * n, pen.detach() * n,
                                     (logits.argmax(1) == yb).sum()]).to(torch.float64)
            if capture_steps:
                result.steps.append(export_weights(model))
                result.states.append(export_state(optimizer, model))
        loss_sum, data_sum, pen_sum, correct = sums.tolist()
        row = {"epoch": epoch + 1, "loss": loss_sum / len(perm), "data_loss": data_sum / len(perm),
               "penalty": pen_sum / len(perm), "accuracy": correct / len(perm)}
        if x_test is not None:
            row["test_accuracy"] = accuracy(model, x_test, y_test)
        result.history.append(row)
        if on_epoch is not None:
            on_epoch(epoch, row)
    return result
