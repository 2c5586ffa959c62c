"""Port a Keras model to PyTorch, and move weights between the two.

``keras_to_torch`` converts a Sequential model (or a functional chain) layer by
layer into an ``nn.Sequential`` whose children carry the Keras layer names, so
that canonical weight names ("dense_1/kernel") line up on both sides. It copies
the weights, flattens in Keras's (H, W, C) order and carries every L2 regularizer
into ``model.l2_coefficients``. Anything it cannot port exactly is refused with
an error that names the layer.

This module imports both frameworks; the run engine never imports it.
"""
from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

import keras
from keras import layers as kl

from keras_impl import l2 as keras_l2
from porter.activations import ACTIVATIONS
from porter.pooling import port as port_pooling
from keras_impl import weights as keras_weights
from torch_impl import weights as torch_weights
from torch_impl.models import KerasFlatten

SUPPORTED = (
    "InputLayer, Dense, Conv2D (valid/same padding, channels_last), MaxPooling2D and AveragePooling2D "
    "(valid), GlobalAveragePooling2D, GlobalMaxPooling2D, ZeroPadding2D, Flatten, Dropout, Activation, ReLU, "
    "Softmax; every built-in activation but glu, sparsemax and threshold; regularizers: L2 (or L1L2 with l1=0)"
)



class PortError(ValueError):
    """A Keras model or layer that cannot be ported exactly."""


def _unsupported(layer, what: str) -> PortError:
    return PortError(f"cannot port layer {layer.name!r} ({type(layer).__name__}): {what}. Supported: {SUPPORTED}")


def _activation_name(layer, activation) -> str:
    name = getattr(activation, "__name__", str(activation))
    if name not in ACTIVATIONS:
        raise _unsupported(layer, f"activation {name!r} (supported: {', '.join(ACTIVATIONS)})")
    return name


class Activation(nn.Module):
    """A Keras activation; ``dim`` is the feature axis (1 for NCHW maps, -1 for vectors)."""

    def __init__(self, name: str, dim: int = -1):
        super().__init__()
        self.name, self.dim = name, dim

    def forward(self, x):
        return ACTIVATIONS[self.name](x, self.dim)

    def extra_repr(self):
        return self.name


class Dense(nn.Linear):
    """Keras Dense: Linear followed by its fused activation."""

    def __init__(self, in_features, out_features, bias, activation):
        super().__init__(in_features, out_features, bias=bias)
        self.act = Activation(activation, dim=-1)

    def forward(self, x):
        return self.act(super().forward(x))


class Conv2d(nn.Conv2d):
    """Keras Conv2D on NCHW input: explicit zero padding (Keras 'same' puts the odd pixel
    at the bottom/right, which torch's symmetric padding cannot), conv, activation."""

    def __init__(self, in_ch, out_ch, kernel, stride, dilation, pads, bias, activation):
        super().__init__(in_ch, out_ch, kernel, stride=stride, dilation=dilation, bias=bias)
        self.pads = pads  # (left, right, top, bottom), F.pad's order for the last two dims
        self.act = Activation(activation, dim=1)

    def forward(self, x):
        if any(self.pads):
            x = F.pad(x, self.pads)
        return self.act(super().forward(x))


def _same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """Keras/TF 'same': output ceil(size/stride); the extra pixel goes after (bottom/right)."""
    effective = (kernel - 1) * dilation + 1
    total = max((math.ceil(size / stride) - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def _l2_lambda(layer, attr: str) -> float:
    """λ as Keras applies it. Keras computes ``ops.cast(l2, x.dtype) * sum(square(x))``; on the
    TensorFlow backend the cast of a Python float goes through float32, so a float64 model's λ
    is the float32 rounding of the one written (1e-3 -> 0.0010000000474974513). Asking the
    regularizer itself for λ·1² in float64 gives exactly the value it uses, on any backend."""
    regularizer = getattr(layer, attr, None)
    try:
        written = keras_l2.l2_of(regularizer)
    except ValueError as exc:
        raise _unsupported(layer, f"{attr}: {exc}") from None
    if not written:
        return 0.0
    return float(np.asarray(regularizer(keras.ops.ones((1,), dtype="float64"))))


def _check_plain(layer) -> None:
    if getattr(layer, "activity_regularizer", None) is not None:
        raise _unsupported(layer, "activity_regularizer")
    for attr in ("kernel_constraint", "bias_constraint"):
        if getattr(layer, attr, None) is not None:
            raise _unsupported(layer, attr)


def _chain(model: keras.Model) -> list:
    """The model's layers in order, checking that a functional model is a single chain."""
    if not isinstance(model, keras.Model):
        raise PortError(f"expected a keras Model, got {type(model).__name__}")
    if not isinstance(model, keras.Sequential) and not _is_functional(model):
        raise PortError(f"{type(model).__name__} is a subclassed keras.Model: its call() is Python code, with no "
                        "layer graph to port; rebuild it as a Sequential or functional model")
    if not getattr(model, "inputs", None):
        raise PortError(f"model {model.name!r} has no input shape yet: give it a keras.Input (or build it) first")
    chain = [layer for layer in model.layers if not isinstance(layer, kl.InputLayer)]
    if not isinstance(model, keras.Sequential):
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise PortError("only single-input, single-output chains can be ported")
        previous = model.inputs[0]
        for layer in chain:
            if layer.input is not previous and getattr(layer.input, "name", None) != getattr(previous, "name", 0):
                raise PortError(f"layer {layer.name!r} is not fed by the previous layer: not a plain chain")
            previous = layer.output
    return chain


def _is_functional(model) -> bool:
    from keras.src.models.functional import Functional  # Keras 3 has no public name for it

    return isinstance(model, Functional)


def _port_layer(layer, shape: tuple):
    """(torch module or None, λ per Keras weight ("kernel", "bias"), output shape (Keras layout, no batch))."""
    _check_plain(layer)
    coefs = {}
    if isinstance(layer, kl.Dense):
        if len(shape) != 1:
            raise _unsupported(layer, f"Dense on a rank-{len(shape) + 1} input (Flatten first)")
        act = _activation_name(layer, layer.activation)
        module = Dense(shape[0], layer.units, layer.use_bias, act)
        out_shape = (layer.units,)
    elif isinstance(layer, kl.Conv2D) and type(layer) is kl.Conv2D:
        if layer.data_format != "channels_last":
            raise _unsupported(layer, f"data_format {layer.data_format!r} (only channels_last)")
        if layer.padding not in ("valid", "same"):
            raise _unsupported(layer, f"padding {layer.padding!r} (only 'valid' or 'same')")
        if layer.groups != 1:
            raise _unsupported(layer, "groups != 1")
        if len(shape) != 3:
            raise _unsupported(layer, f"input of shape {shape}")
        h, w, c = shape
        (kh, kw), (sh, sw), (dh, dw) = layer.kernel_size, layer.strides, layer.dilation_rate
        if layer.padding == "same":
            top, bottom = _same_pads(h, kh, sh, dh)
            left, right = _same_pads(w, kw, sw, dw)
        else:
            top = bottom = left = right = 0
        act = _activation_name(layer, layer.activation)
        module = Conv2d(c, layer.filters, (kh, kw), (sh, sw), (dh, dw), (left, right, top, bottom), layer.use_bias, act)
        oh = (h + top + bottom - (kh - 1) * dh - 1) // sh + 1
        ow = (w + left + right - (kw - 1) * dw - 1) // sw + 1
        out_shape = (oh, ow, layer.filters)
    elif (pooled := port_pooling(layer, shape, _unsupported)) is not None:
        module, out_shape = pooled
    elif isinstance(layer, kl.Flatten):
        module = KerasFlatten() if len(shape) == 3 else nn.Flatten()
        out_shape = (int(np.prod(shape)),)
    elif isinstance(layer, kl.Dropout):
        module, out_shape = nn.Dropout(layer.rate), shape
    elif isinstance(layer, kl.ReLU):
        if layer.max_value is not None or layer.negative_slope or layer.threshold:
            raise _unsupported(layer, "ReLU with max_value, negative_slope or threshold")
        module, out_shape = Activation("relu"), shape
    elif isinstance(layer, kl.Softmax):
        if layer.axis not in (-1, len(shape)):
            raise _unsupported(layer, f"Softmax over axis {layer.axis} (only the last axis)")
        module, out_shape = Activation("softmax", dim=1 if len(shape) == 3 else -1), shape
    elif isinstance(layer, kl.Activation):
        act = _activation_name(layer, layer.activation)
        module, out_shape = Activation(act, dim=1 if len(shape) == 3 else -1), shape
    else:
        raise _unsupported(layer, "layer type not supported")
    if isinstance(layer, (kl.Dense, kl.Conv2D)):
        for attr, suffix in (("kernel_regularizer", "kernel"), ("bias_regularizer", "bias")):
            lam = _l2_lambda(layer, attr)
            if lam:
                coefs[suffix] = lam
    return module, coefs, out_shape


def _fold_final_softmax(modules: "dict[str, nn.Module]") -> bool:
    """Drop a final softmax (the loss applies it to logits, as Keras's TF backend does)."""
    name, last = list(modules.items())[-1]
    if isinstance(last, Activation) and last.name == "softmax":
        del modules[name]
        return True
    if isinstance(last, (Dense, Conv2d)) and last.act.name == "softmax":
        last.act = Activation("linear")
        return True
    return False


def keras_to_torch(keras_model: keras.Model) -> nn.Sequential:
    """An equivalent torch module, with Keras's weights and L2 coefficients.

    Input: (N, features) for vector models, (N, C, H, W) for image models.
    Output: logits if the Keras model ends in a softmax (``returns_logits`` is True),
    else the Keras model's output.
    """
    chain = _chain(keras_model)
    shape = tuple(int(d) for d in keras_model.inputs[0].shape[1:])
    modules, coefs = {}, {}
    for layer in chain:
        module, layer_coefs, shape = _port_layer(layer, shape)
        modules[layer.name] = module
        coefs.update({f"{layer.name}/{weight}": lam for weight, lam in layer_coefs.items()})  # canonical names
    returns_logits = _fold_final_softmax(modules)
    model = nn.Sequential(OrderedDict(modules))
    model.l2_coefficients = coefs
    model.returns_logits = returns_logits
    dtype = keras_model.inputs[0].dtype
    model.to(dtype=torch.float64 if str(dtype).endswith("float64") else torch.float32)
    copy_weights(keras_model, model)
    return model


def _is_torch(model) -> bool:
    return isinstance(model, nn.Module)


def export_weights(model) -> dict[str, np.ndarray]:
    """Canonical weights (Keras layout) of a Keras model or a torch mirror."""
    return torch_weights.export_weights(model) if _is_torch(model) else keras_weights.export_weights(model)


def import_weights(model, weights: dict[str, np.ndarray]) -> None:
    """Assign canonical weights to a Keras model or a torch mirror (names and shapes checked)."""
    if _is_torch(model):
        torch_weights.import_weights(model, weights)
    else:
        keras_weights.import_weights(model, weights)


def copy_weights(src, dst) -> None:
    """Copy every weight from ``src`` to ``dst`` (Keras -> torch or torch -> Keras, or same kind)."""
    import_weights(dst, export_weights(src))
