"""Keras's L2 in torch: λ per parameter, and the penalty Σ λ·Σw² that Keras adds to the loss."""
from __future__ import annotations

import torch
from torch import nn


def coefficients(model: nn.Module) -> dict[str, float]:
    """Parameter name ("hidden.weight") -> λ, for exactly the tensors Keras regularizes."""
    return dict(getattr(model, "l2_coefficients", {}))


def penalty(model: nn.Module) -> torch.Tensor:
    """Σ λ·Σw² (no ½, as Keras's ``L2``), differentiable; gradient 2λw."""
    coefs = coefficients(model)
    params = dict(model.named_parameters())
    terms = [lam * params[name].square().sum() for name, lam in coefs.items()]
    if not terms:
        return torch.zeros((), dtype=next(model.parameters()).dtype)
    return torch.stack(terms).sum()
