"""Keras's built-in activations as torch source, with Keras's defaults (which are not always torch's).

Each entry maps the name a Keras layer records to an expression template: ``{x}`` is the input,
``{dim}`` the feature axis (for those that normalize over features). Where torch's function
with its own defaults computes something else, the entry says so.
"""
from __future__ import annotations

import numpy as np

# TensorFlow rounds these Python floats through float32 (measured: float64 models use the rounded value).
_INV_SQRT2 = repr(float(np.float32(0.7071067811865476)))
_LEAKY_SLOPE = repr(float(np.float32(0.2)))

ACTIVATIONS = {
    "linear": "{x}",
    "relu": "F.relu({x})",
    "relu6": "F.relu6({x})",
    "sigmoid": "torch.sigmoid({x})",
    "tanh": "torch.tanh({x})",
    "softmax": "torch.softmax({x}, dim={dim})",
    "log_softmax": "torch.log_softmax({x}, dim={dim})",
    "elu": "F.elu({x}, alpha=1.0)",
    "celu": "F.celu({x}, alpha=1.0)",
    "selu": "F.selu({x})",
    # Keras's default is the erf form (torch's F.gelu too), but TensorFlow writes it
    # 0.5·x·erfc(−x·cast(1/√2)), and that cast of a Python float goes through float32: a float64
    # model multiplies by 0.70710677 (5e-9 off F.gelu, measured). So the same expression here.
    "gelu": "0.5 * {x} * torch.erfc(-{x} * " + _INV_SQRT2 + ")",
    # Keras's leaky_relu slope is 0.2 (torch's default: 0.01), and TensorFlow holds it in a float32
    # attribute (tf.nn.leaky_relu's alpha), so a float64 model uses 0.2 rounded to float32.
    "leaky_relu": "F.leaky_relu({x}, negative_slope=" + _LEAKY_SLOPE + ")",
    # log(1 + eˣ) without torch's linear cut-off above x = 20 (F.softplus's threshold), as TensorFlow.
    "softplus": "torch.logaddexp({x}, torch.zeros_like({x}))",
    "softsign": "F.softsign({x})",
    "silu": "F.silu({x})",
    "mish": "F.mish({x})",
    # Keras 3's hard_sigmoid is relu6(x + 3) / 6 (Keras 2's was 0.2x + 0.5): torch's hardsigmoid.
    "hard_sigmoid": "F.hardsigmoid({x})",
    "hard_silu": "F.hardswish({x})",
    "hard_tanh": "F.hardtanh({x})",
    "exponential": "torch.exp({x})",
    "log_sigmoid": "F.logsigmoid({x})",
    "tanh_shrink": "F.tanhshrink({x})",
    "soft_shrink": "F.softshrink({x}, 0.5)",
    "hard_shrink": "F.hardshrink({x}, 0.5)",
    "squareplus": "({x} + torch.sqrt({x} * {x} + 4)) / 2",
    "sparse_plus": "torch.where({x} <= -1, torch.zeros_like({x}), torch.where({x} >= 1, {x}, ({x} + 1) ** 2 / 4))",
    "sparse_sigmoid": ("torch.where({x} <= -1, torch.zeros_like({x}), "
                       "torch.where({x} >= 1, torch.ones_like({x}), 0.5 * ({x} + 1)))"),
}
# Not ported: `glu` halves the feature axis, `sparsemax` projects onto the simplex, `threshold`
# takes arguments a layer's activation string cannot give. They are refused with a PortError.
REFUSED = ("glu", "sparsemax", "threshold")


def name_of(ctx, activation) -> str:
    """The registered name of a Keras activation function; anything else is refused."""
    name = getattr(activation, "__name__", str(activation))
    if name not in ACTIVATIONS:
        raise ctx.fail(f"activation {name!r} (ported: {', '.join(ACTIVATIONS)}; refused: {', '.join(REFUSED)})")
    return name


def apply(ctx, name: str, expr: str, dim: int) -> list[str]:
    """Lines that set ``{y}`` to activation ``name`` of ``expr`` (an expression of the inputs).

    A softmax the loss applies (``ctx.fold_softmax``) is left out: the model returns logits."""
    if name == "softmax" and ctx.fold_softmax:
        name = "linear"
        ctx.folded = True
    template = ACTIVATIONS[name]
    if name == "linear":
        return [f"{{y}} = {expr}"]
    if template.count("{x}") == 1:
        return ["{y} = " + template.format(x=expr, dim=dim)]
    return [f"{{y}} = {expr}", "{y} = " + template.format(x="{y}", dim=dim)]
