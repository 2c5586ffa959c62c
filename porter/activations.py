"""Keras's built-in activations in torch, with Keras's defaults (which are not always torch's).

Each entry maps the name a Keras layer records to ``f(x, dim)``; ``dim`` is the feature axis
(1 for NCHW maps, -1 for vectors) for the ones that normalize over features. Where torch's
function with its own defaults computes something else, the entry says so.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

_INV_SQRT2_AS_TF_CASTS = float(np.float32(0.7071067811865476))

ACTIVATIONS = {
    "linear": lambda x, dim: x,
    "relu": lambda x, dim: F.relu(x),
    "relu6": lambda x, dim: F.relu6(x),
    "sigmoid": lambda x, dim: torch.sigmoid(x),
    "tanh": lambda x, dim: torch.tanh(x),
    "softmax": lambda x, dim: F.softmax(x, dim=dim),
    "log_softmax": lambda x, dim: F.log_softmax(x, dim=dim),
    "elu": lambda x, dim: F.elu(x, alpha=1.0),
    "celu": lambda x, dim: F.celu(x, alpha=1.0),
    "selu": lambda x, dim: F.selu(x),
    # Keras's default is the erf form (torch's F.gelu too), but TensorFlow writes it
    # 0.5·x·erfc(−x·cast(1/√2)), and that cast of a Python float goes through float32: a float64
    # model multiplies by 0.70710677 (5e-9 off F.gelu, measured). So the same expression here.
    "gelu": lambda x, dim: 0.5 * x * torch.erfc(-x * _INV_SQRT2_AS_TF_CASTS),
    # Keras's leaky_relu slope is 0.2 (torch's default: 0.01), and TensorFlow holds it in a float32
    # attribute (tf.nn.leaky_relu's alpha), so a float64 model uses 0.2 rounded to float32.
    "leaky_relu": lambda x, dim: F.leaky_relu(x, negative_slope=float(np.float32(0.2))),
    # log(1 + eˣ) without torch's linear cut-off above x = 20 (F.softplus's threshold), as TensorFlow.
    "softplus": lambda x, dim: torch.logaddexp(x, torch.zeros_like(x)),
    "softsign": lambda x, dim: F.softsign(x),
    "silu": lambda x, dim: F.silu(x),
    "mish": lambda x, dim: F.mish(x),
    # Keras 3's hard_sigmoid is relu6(x + 3) / 6 (Keras 2's was 0.2x + 0.5): torch's hardsigmoid.
    "hard_sigmoid": lambda x, dim: F.hardsigmoid(x),
    "hard_silu": lambda x, dim: F.hardswish(x),
    "hard_tanh": lambda x, dim: F.hardtanh(x),
    "exponential": lambda x, dim: torch.exp(x),
    "log_sigmoid": lambda x, dim: F.logsigmoid(x),
    "tanh_shrink": lambda x, dim: F.tanhshrink(x),
    "soft_shrink": lambda x, dim: F.softshrink(x, 0.5),
    "hard_shrink": lambda x, dim: F.hardshrink(x, 0.5),
    "squareplus": lambda x, dim: (x + torch.sqrt(x * x + 4)) / 2,
    "sparse_plus": lambda x, dim: torch.where(x <= -1, torch.zeros_like(x), torch.where(x >= 1, x, (x + 1) ** 2 / 4)),
    "sparse_sigmoid": lambda x, dim: torch.where(x <= -1, torch.zeros_like(x),
                                                 torch.where(x >= 1, torch.ones_like(x), 0.5 * (x + 1))),
}
# Not ported: `glu` halves the feature axis, `sparsemax` projects onto the simplex, `threshold`
# takes arguments a layer's activation string cannot give. They are refused with a PortError.
REFUSED = ("glu", "sparsemax", "threshold")
