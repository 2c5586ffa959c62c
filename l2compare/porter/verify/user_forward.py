"""The user's port against Keras on one forward pass, in float64, before any training is compared.

It finds how the user's module takes its input (Keras's channels-last arrays as they are, or with the
channels moved to axis 1 as a torch CNN takes them) and what it returns (logits of a softmax model, or the
probabilities themselves). If no way agrees with Keras, it tries the classic port error: a torch Flatten
reads (C, H, W) where Keras's reads (H, W, C), so the Dense after it needs its rows permuted. Agreeing only
then is diagnosed as "flatten order"; otherwise "forward pass differs". Either way the training comparison
would be meaningless and is not run.
"""
from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
import torch

from l2compare.porter.graph import walk
from l2compare.porter.verify.user_port import Match, load_matched

# float64 rounding of a forward pass is ~1e-16 of the output; any port difference (a permutation, another
# epsilon, a missing bias) is many orders larger.
FORWARD_TOLERANCE = 1e-9
LAYOUTS = ("in Keras's layout (channels last)", "channels first (N, C, ...), as torch")


@dataclass
class Forward:
    verdict: str                  # "agrees", "flatten order" or "forward pass differs"
    difference: float             # max |user − Keras| / max |Keras| of the best way found
    layout: int = 0               # index into LAYOUTS
    returns_logits: bool = False  # the user's module returns the logits of Keras's softmax
    detail: str = ""


def to_user_input(x: torch.Tensor, layout: int) -> torch.Tensor:
    return x.movedim(-1, 1) if layout == 1 and x.ndim >= 3 and x.is_floating_point() else x


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max(initial=0.0) / max(float(np.abs(b).max(initial=0.0)), np.finfo(float).tiny))


def _best(user_model, xs: list[np.ndarray], keras_out: np.ndarray, softmax_output: bool):
    """(difference, layout, returns_logits) of the best way to call the user's module; None if none runs."""
    found = []
    for layout in range(len(LAYOUTS)):
        if layout == 1 and not any(a.ndim >= 3 for a in xs):
            continue
        try:
            with torch.no_grad():
                out = user_model(*(to_user_input(torch.from_numpy(a), layout) for a in xs))
        except Exception:  # noqa: BLE001 - the user's module refusing this input layout: try the next one
            continue
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != keras_out.shape:
            continue
        out = out.double()
        found.append((_relative(out.numpy(), keras_out), layout, False))
        if softmax_output:
            found.append((_relative(torch.softmax(out, -1).numpy(), keras_out), layout, True))
    return min(found, key=lambda f: f[0]) if found else None


def flatten_dense(model) -> list[tuple[object, tuple]]:
    """[(the Dense layer, (*spatial, channels) of the Flatten before it)] for each Flatten of a map (rank ≥ 3)
    that feeds a Dense directly."""
    graph = walk(model)
    flat_out = {}
    for node in graph.nodes:
        if isinstance(node.operation, keras.layers.Flatten) and len(node.inputs[0].shape) >= 3:
            flat_out[id(node.outputs[0])] = tuple(node.inputs[0].shape[1:])
    return [(node.operation, flat_out[id(node.inputs[0])]) for node in graph.nodes
            if isinstance(node.operation, keras.layers.Dense) and node.inputs and id(node.inputs[0]) in flat_out]


def channels_first_columns(shape: tuple) -> np.ndarray:
    """For a map (*spatial, C): column p of a Linear after a channels-first flatten is Keras's row index[p]."""
    order = np.arange(int(np.prod(shape))).reshape(shape)
    return np.moveaxis(order, -1, 0).ravel()


def check_forward(side, user_model, match: Match, xs: list[np.ndarray], softmax_output: bool) -> Forward:
    """The float64 user module (``user_model``) against the float64 Keras copy of ``side``, in inference mode."""
    state = side.port.state()
    load_matched(user_model, match, state)
    user_model.eval()
    sample = [a[:8].astype(np.float64) if np.issubdtype(a.dtype, np.floating) else a[:8] for a in xs]
    keras_out = np.asarray(keras.ops.convert_to_numpy(
        side.clone(sample if len(sample) > 1 else sample[0], training=False)), np.float64)
    best = _best(user_model, sample, keras_out, softmax_output)
    if best is None:
        return Forward("forward pass differs", float("inf"), detail="your module takes neither Keras's input layout "
                       "nor channels first, or returns another shape than Keras's " + str(keras_out.shape))
    if best[0] <= FORWARD_TOLERANCE:
        return Forward("agrees", *best)
    # The classic mistake: try the Dense after each Flatten with its columns in channels-first order.
    for dense, shape in flatten_dense(side.clone):
        key = next((k for k, name in match.keras_names.items() if name.endswith(f"{dense.name}/kernel")), None)
        if key is None or key not in match.pairs:
            continue
        permuted = dict(state)
        permuted[key] = np.asarray(state[key])[:, channels_first_columns(shape)]
        load_matched(user_model, match, permuted)
        again = _best(user_model, sample, keras_out, softmax_output)
        load_matched(user_model, match, state)
        if again is not None and again[0] <= FORWARD_TOLERANCE:
            spatial = ", ".join("HWD"[:len(shape) - 1])
            return Forward("flatten order", best[0], again[1], again[2],
                           f"your module flattens {dense.name}'s input channels first (C, {spatial}); "
                           f"Keras's Flatten reads ({spatial}, C): with the rows of Keras's {dense.name}/kernel "
                           "permuted to that order the forward passes agree. Permute the activations before flattening "
                           "(x.permute(0, 2, 3, 1).flatten(1)) or the kernel's rows when loading Keras's weights")
    return Forward("forward pass differs", best[0], best[1], best[2],
                   f"max relative difference {best[0]:.2e} of max |output| on 8 samples, in float64 "
                   f"(rounding: ≤ {FORWARD_TOLERANCE:g}); not the flatten order")
