"""Canonical weights (Keras layout, NumPy) to and from a torch module.

Canonical names are "layer/kernel" and "layer/bias"; torch's are "layer.weight"
and "layer.bias". A nested model's are paths: "base/conv1/kernel" is "base.conv1.weight". Layouts:
  Dense kernel (in, out)            <-> Linear weight (out, in): transpose
  Conv2D kernel (kh, kw, in, out)   <-> Conv2d weight (out, in, kh, kw)
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

_TO_CANONICAL = {"weight": "kernel", "bias": "bias"}
_TO_TORCH = {v: k for k, v in _TO_CANONICAL.items()}


def canonical_name(param_name: str) -> str:
    layer, kind = param_name.rsplit(".", 1)
    return f"{layer.replace('.', '/')}/{_TO_CANONICAL[kind]}"


def torch_name(canonical: str) -> str:
    layer, kind = canonical.rsplit("/", 1)
    return f"{layer.replace('/', '.')}.{_TO_TORCH[kind]}"


def to_canonical(param: np.ndarray) -> np.ndarray:
    if param.ndim == 2:
        return param.T
    if param.ndim == 4:
        return param.transpose(2, 3, 1, 0)  # (out, in, kh, kw) -> (kh, kw, in, out)
    return param


def from_canonical(value: np.ndarray) -> np.ndarray:
    if value.ndim == 2:
        return value.T
    if value.ndim == 4:
        return value.transpose(3, 2, 0, 1)  # (kh, kw, in, out) -> (out, in, kh, kw)
    return value


def named_variables(model: nn.Module):
    """(canonical name, parameter) for every parameter of ``model``, in registration order."""
    for name, p in model.named_parameters():
        yield canonical_name(name), p


def export_weights(model: nn.Module) -> dict[str, np.ndarray]:
    """Copies of every parameter, keyed by canonical name, in Keras layout."""
    # np.array(copy=True): .numpy() shares memory with the parameter, and 1-D tensors need no
    # transpose, so without a copy a bias "snapshot" would keep changing with training.
    return {name: np.array(to_canonical(p.detach().cpu().numpy()), order="C", copy=True)
            for name, p in named_variables(model)}


@torch.no_grad()
def import_weights(model: nn.Module, weights: dict[str, np.ndarray]) -> None:
    """Assign canonical weights; every tensor must be present with the right shape, and no extra."""
    params = dict(named_variables(model))
    missing = sorted(set(params) - set(weights))
    extra = sorted(set(weights) - set(params))
    if missing or extra:
        raise ValueError(f"weight names differ: missing {missing}, unexpected {extra}")
    for name, p in params.items():
        value = from_canonical(np.asarray(weights[name]))
        if tuple(value.shape) != tuple(p.shape):
            raise ValueError(
                f"shape mismatch for {name}: got {np.asarray(weights[name]).shape} (Keras layout), "
                f"model has {tuple(p.shape)} (torch layout)"
            )
        p.copy_(torch.as_tensor(np.ascontiguousarray(value), dtype=p.dtype, device=p.device))
