"""Pooling and padding layers of a Keras chain, ported to NCHW torch modules.

Keras's maps are (H, W, C) per sample; the ported chain runs NCHW, so every module here
reduces or pads dims 2 and 3. ``port(layer, shape)`` returns (module, output shape in
Keras's layout), or None for a layer that is not one of these.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from keras import layers as kl


class GlobalPool2d(nn.Module):
    """GlobalAveragePooling2D / GlobalMaxPooling2D: reduce H and W of (N, C, H, W)."""

    def __init__(self, how: str, keepdims: bool):
        super().__init__()
        self.how, self.keepdims = how, keepdims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.how == "mean":
            return x.mean(dim=(2, 3), keepdim=self.keepdims)  # (N, C) or (N, C, 1, 1)
        return x.amax(dim=(2, 3), keepdim=self.keepdims)

    def extra_repr(self):
        return f"{self.how}, keepdims={self.keepdims}"


class ZeroPad2d(nn.Module):
    """ZeroPadding2D: ``pads`` in F.pad's order (left, right, top, bottom)."""

    def __init__(self, pads: tuple[int, int, int, int]):
        super().__init__()
        self.pads = pads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.pads)


def _channels_last(layer, unsupported) -> None:
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise unsupported(layer, f"data_format {layer.data_format!r} (only channels_last)")


def port(layer, shape: tuple, unsupported):
    """(module, output shape) for a pooling or padding layer on an (H, W, C) input, else None.
    ``unsupported(layer, what)`` makes the PortError for what cannot be ported exactly."""
    pools = {kl.MaxPooling2D: nn.MaxPool2d, kl.AveragePooling2D: nn.AvgPool2d}
    for keras_class, torch_class in pools.items():
        if isinstance(layer, keras_class):
            _channels_last(layer, unsupported)
            if layer.padding != "valid":
                # 'same' average pooling divides by the count of real pixels in each window, and
                # pads unevenly: not one torch pooling call; refused rather than approximated.
                raise unsupported(layer, f"padding {layer.padding!r} (only 'valid')")
            (ph, pw), (sh, sw) = layer.pool_size, layer.strides
            h, w, c = shape
            return torch_class((ph, pw), stride=(sh, sw)), ((h - ph) // sh + 1, (w - pw) // sw + 1, c)
    globals_ = {kl.GlobalAveragePooling2D: "mean", kl.GlobalMaxPooling2D: "max"}
    for keras_class, how in globals_.items():
        if isinstance(layer, keras_class):
            _channels_last(layer, unsupported)
            c = shape[-1]
            return GlobalPool2d(how, layer.keepdims), ((1, 1, c) if layer.keepdims else (c,))
    if isinstance(layer, kl.ZeroPadding2D):
        _channels_last(layer, unsupported)
        (top, bottom), (left, right) = layer.padding
        h, w, c = shape
        return ZeroPad2d((left, right, top, bottom)), (h + top + bottom, w + left + right, c)
    return None
