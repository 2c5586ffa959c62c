"""Optimizers: Keras-exact ones for ``parity`` mode, stock torch ones for ``native`` mode.

Keras-exact means the same arithmetic as Keras 3's optimizers, in the same order:

* ``KerasSGD`` — momentum in Keras's form m = μ·m − lr·g; w += m (torch's is
  b = μ·b + g; w −= lr·b: equal in exact arithmetic, not in rounding).
* ``KerasAdam`` — ε outside the bias correction:
  w −= lr·√(1−β2ᵗ)/(1−β1ᵗ) · m / (√v + ε). torch's Adam puts ε inside; it would
  need eps = ε/√(1−β2ᵗ) at step t, so no constant torch eps reproduces Keras.
* ``weight_decay`` — Keras's decoupled decay, w −= w·wd·lr, applied to every
  tensor of a group before the update. A group with ``weight_decay=None`` (or 0)
  is excluded, as ``exclude_from_weight_decay`` does in Keras.
* ``coupled_weight_decay`` (per group, not a Keras argument) — g += c·w, the
  torch-style coupled decay, so that the ``coupled`` recipe can run on
  Keras-exact arithmetic too.
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

from torch_impl.recipes import Recipe

# Keras 3 defaults, and torch's, where they differ (DESIGN.md).
KERAS_DEFAULTS = {"sgd": {"lr": 0.01}, "adam": {"lr": 1e-3}, "adamw": {"lr": 1e-3, "weight_decay": 0.004}}
TORCH_DEFAULTS = {"sgd": {"lr": 1e-3}, "adam": {"lr": 1e-3}, "adamw": {"lr": 1e-3, "weight_decay": 0.01}}


def _scalar(value: float, like: torch.Tensor) -> torch.Tensor:
    # Hyperparameters in the parameter's dtype, as Keras casts them to the variable's dtype.
    return torch.tensor(value, dtype=like.dtype, device=like.device)


# Whether the Keras a port mirrors rounds a Python-float hyperparameter through float32 on its way to a
# float64 variable: TensorFlow does, JAX (x64) and torch cast it exactly (comparisons/test_backend_facts.py).
# A list, so that ``hyperparameters_of`` can set it for the steps taken inside it.
_THROUGH_FLOAT32 = [True]


@contextlib.contextmanager
def hyperparameters_of(keras_backend: str):
    """Inside: hyperparameters (and parity mode's λ) as Keras on ``keras_backend`` casts them."""
    previous = _THROUGH_FLOAT32[0]
    _THROUGH_FLOAT32[0] = keras_backend == "tensorflow"
    try:
        yield
    finally:
        _THROUGH_FLOAT32[0] = previous


def keras_float(value: float) -> float:
    """A Python-float hyperparameter as Keras brings it to a float64 variable: through float32 on
    TensorFlow (0.999 -> 0.99900001287...; the default), exactly on JAX and torch (``hyperparameters_of``)."""
    return float(np.float32(value)) if _THROUGH_FLOAT32[0] else float(value)


def _cast(value: float, like: torch.Tensor) -> torch.Tensor:
    """A hyperparameter that Keras passes through ``ops.cast(value, variable.dtype)``: on the
    TensorFlow backend a Python float becomes a float32 tensor first, so a float64 variable gets
    the float32 rounding of β1, β2, momentum and weight_decay (``keras_float``).
    Arithmetic with a Python float (``1 - beta_1``, ε) stays exact, as it does in Keras."""
    return _scalar(keras_float(value), like)


class _KerasOptimizer(torch.optim.Optimizer):
    def _decay_and_grad(self, group, p):
        """Keras applies decoupled decay to the weights before the update; the gradient was
        taken at the pre-decay weights (coupled decay is added to it from those weights)."""
        grad = p.grad
        if group["coupled_weight_decay"]:
            grad = grad + group["coupled_weight_decay"] * p.detach()
        if group["weight_decay"]:
            lr, wd = _scalar(group["lr"], p), _cast(group["weight_decay"], p)
            p.sub_(p * wd * lr)  # Keras: variable - variable * wd * lr
        return grad


class KerasSGD(_KerasOptimizer):
    """keras.optimizers.SGD(learning_rate=lr, momentum=momentum, weight_decay=weight_decay)."""

    def __init__(self, params, lr: float = 0.01, momentum: float = 0.0, weight_decay: float | None = None):
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, coupled_weight_decay=0.0)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = self._decay_and_grad(group, p)
                lr = _scalar(group["lr"], p)
                if group["momentum"]:
                    state = self.state[p]
                    if "momentum" not in state:
                        state["momentum"] = torch.zeros_like(p)
                    m = state["momentum"]
                    m.copy_(m * _cast(group["momentum"], p) - grad * lr)  # m = μ·m − lr·g
                    p.add_(m)
                else:
                    p.sub_(grad * lr)
        return loss


class KerasAdam(_KerasOptimizer):
    """keras.optimizers.Adam (and AdamW, which is Adam with ``weight_decay``), arithmetic for arithmetic."""

    def __init__(self, params, lr: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, weight_decay: float | None = None):
        defaults = dict(lr=lr, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, weight_decay=weight_decay,
                        coupled_weight_decay=0.0)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            b1, b2 = group["beta_1"], group["beta_2"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = self._decay_and_grad(group, p)
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["m"] = torch.zeros_like(p)
                    state["v"] = torch.zeros_like(p)
                state["step"] += 1
                t = _scalar(state["step"], p)
                m, v = state["m"], state["v"]
                beta_1, beta_2 = _cast(b1, p), _cast(b2, p)
                alpha = _scalar(group["lr"], p) * torch.sqrt(1 - beta_2**t) / (1 - beta_1**t)
                m.add_((grad - m) * (1 - b1))
                v.add_((grad * grad - v) * (1 - b2))
                p.sub_((m * alpha) / (torch.sqrt(v) + group["epsilon"]))
        return loss


class SGDW(torch.optim.SGD):
    """Stock torch SGD with a decoupled decay done by hand before ``step()`` (torch has no SGDW).

    Per group ``decoupled_weight_decay``: w ← w·(1 − lr·wd), as torch's AdamW does it.
    """

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            wd = group.get("decoupled_weight_decay", 0.0)
            if wd:
                for p in group["params"]:
                    if p.grad is not None:
                        p.mul_(1 - group["lr"] * wd)
        return super().step(closure)


def _groups(model: nn.Module, recipe: Recipe) -> list[dict]:
    """Parameter groups by (coupled, decoupled) decay, keeping the model's parameter order."""
    from torch_impl.weights import named_variables

    groups: dict[tuple[float, float], list] = {}
    for name, p in named_variables(model):
        key = (recipe.coupled.get(name, 0.0), recipe.decoupled.get(name, 0.0))
        groups.setdefault(key, []).append(p)
    return [{"params": ps, "coupled": c, "decoupled": d} for (c, d), ps in groups.items()]


def make_optimizer(model: nn.Module, spec, regularization: Recipe) -> torch.optim.Optimizer:
    """The Keras-exact optimizer for ``spec`` (a l2compare.core.spec.OptimizerSpec) carrying the recipe's
    decay, with Keras's defaults where the spec leaves a value unset (parity mode).

    The recipe travels with the optimizer (``optimizer.recipe``): its penalty term is the one
    part of a recipe an optimizer cannot apply, and ``train.fit`` adds it to the loss.
    """
    return _optimizer(model, regularization, spec, exact=True)


def stock_optimizer(model: nn.Module, spec, regularization: Recipe) -> torch.optim.Optimizer:
    """torch.optim's own class for ``spec`` carrying the recipe's decay, with torch's defaults
    where the spec leaves a value unset (native mode: what a straightforward port runs)."""
    return _optimizer(model, regularization, spec, exact=False)


def _optimizer(model: nn.Module, recipe: Recipe, spec, *, exact: bool) -> torch.optim.Optimizer:
    optimizer = _build_optimizer(model, recipe, spec, exact=exact)
    optimizer.recipe = recipe
    return optimizer


def _build_optimizer(model: nn.Module, recipe: Recipe, spec, *, exact: bool) -> torch.optim.Optimizer:
    defaults = (KERAS_DEFAULTS if exact else TORCH_DEFAULTS)[spec.name]
    lr = spec.lr if spec.lr is not None else defaults["lr"]
    groups = _groups(model, recipe)
    if exact:
        for g in groups:
            g["coupled_weight_decay"], g["weight_decay"] = g.pop("coupled"), g.pop("decoupled") or None
        if spec.name == "sgd":
            return KerasSGD(groups, lr=lr, momentum=spec.momentum)
        adam = {k: getattr(spec, k) for k in ("beta_1", "beta_2", "epsilon") if getattr(spec, k) is not None}
        return KerasAdam(groups, lr=lr, **adam)
    if spec.name == "sgd":
        for g in groups:
            g["weight_decay"], g["decoupled_weight_decay"] = g.pop("coupled"), g.pop("decoupled")
        return SGDW(groups, lr=lr, momentum=spec.momentum)
    if any(g["coupled"] for g in groups) and any(g["decoupled"] for g in groups):
        raise ValueError(f"recipe {recipe.name!r} mixes coupled and decoupled decay; no torch Adam does both")
    decoupled = spec.name == "adamw" or any(g["decoupled"] for g in groups)
    for g in groups:
        c, d = g.pop("coupled"), g.pop("decoupled")
        g["weight_decay"] = d if decoupled else c
    kwargs = {"lr": lr}
    if spec.beta_1 is not None or spec.beta_2 is not None:
        kwargs["betas"] = (spec.beta_1 if spec.beta_1 is not None else 0.9,
                           spec.beta_2 if spec.beta_2 is not None else 0.999)
    if spec.epsilon is not None:
        kwargs["eps"] = spec.epsilon
    return (torch.optim.AdamW if decoupled else torch.optim.Adam)(groups, **kwargs)


# Canonical optimizer state (keras_impl.optim.export_state): {"iterations": t, "slots": {canonical
# name: {slot: array in Keras layout}}}, slots named as Keras names them. Per optimizer class, the
# torch state key of each Keras slot, and how a Keras value maps onto it (lr: the group's).
_STATE_KEYS = {
    KerasAdam: {"momentum": "m", "velocity": "v"},
    KerasSGD: {"momentum": "momentum"},
    torch.optim.Adam: {"momentum": "exp_avg", "velocity": "exp_avg_sq"},
    torch.optim.AdamW: {"momentum": "exp_avg", "velocity": "exp_avg_sq"},
    SGDW: {"momentum": "momentum_buffer"},
}


def _stock_sgd_momentum(value: torch.Tensor, lr: float, to_torch: bool) -> torch.Tensor:
    # Keras keeps m = μ·m − lr·g and steps w += m; torch keeps b = μ·b + g and steps w −= lr·b: b = −m/lr.
    return -value / lr if to_torch else -value * lr


def _named_state_params(optimizer: torch.optim.Optimizer, model: nn.Module):
    from torch_impl.weights import named_variables

    group_of = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    for name, p in named_variables(model):
        if id(p) in group_of:
            yield name, p, group_of[id(p)]


def import_state(optimizer: torch.optim.Optimizer, model: nn.Module, state: dict) -> None:
    """Set ``optimizer`` (Keras-exact or stock) to Keras's canonical ``state``, so that its next
    step continues Keras's: Adam's moments and step count, SGD's momentum."""
    from torch_impl.weights import from_canonical

    keys = _STATE_KEYS[type(optimizer)]
    optimizer.state.clear()
    if state["iterations"] == 0:
        return  # a fresh optimizer: every class starts from zero moments
    for name, p, group in _named_state_params(optimizer, model):
        slots = state["slots"].get(name, {})
        entry = {}
        for slot, value in slots.items():
            # torch.tensor copies: the optimizer updates its state in place, and the caller's arrays
            # (Keras's recorded states) must not change with it.
            tensor = torch.tensor(np.ascontiguousarray(from_canonical(np.asarray(value))), dtype=p.dtype,
                                  device=p.device)
            if type(optimizer) is SGDW:
                tensor = _stock_sgd_momentum(tensor, group["lr"], to_torch=True)
            entry[keys[slot]] = tensor
        if isinstance(optimizer, KerasAdam):
            entry["step"] = state["iterations"]
        elif isinstance(optimizer, torch.optim.Adam | torch.optim.AdamW):
            entry["step"] = torch.tensor(float(state["iterations"]))
        if entry:
            optimizer.state[p] = entry


def export_state(optimizer: torch.optim.Optimizer, model: nn.Module) -> dict:
    """The optimizer's state in Keras's canonical form (the inverse of ``import_state``)."""
    from torch_impl.weights import to_canonical

    keys = _STATE_KEYS[type(optimizer)]
    slots, iterations = {}, 0
    for name, p, group in _named_state_params(optimizer, model):
        entry = optimizer.state.get(p, {})
        values = {}
        for slot, key in keys.items():
            if key in entry:
                tensor = entry[key].detach()
                if type(optimizer) is SGDW:
                    tensor = _stock_sgd_momentum(tensor, group["lr"], to_torch=False)
                values[slot] = np.array(to_canonical(tensor.cpu().numpy()), order="C", copy=True)
        if values:
            slots[name] = values
        iterations = max(iterations, int(entry.get("step", 0)))
    return {"iterations": iterations, "slots": slots}
