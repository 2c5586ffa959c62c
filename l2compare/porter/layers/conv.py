"""Convolutions, channels first as torch runs them (the code generator permutes into and out of them).

Conv1D/Conv2D (grouped, dilated, strided; 'valid', 'same' and Conv1D's 'causal' padding),
DepthwiseConv1D/2D and SeparableConv1D/2D; the transposed ones are in ``layers_conv_transpose``.

Keras's 'same' pads unevenly when the total is odd (the extra pixel after: bottom/right), as
TensorFlow does; torch's ``padding=`` is symmetric, so an uneven one is an explicit ``F.pad``.
"""
from __future__ import annotations

import math

import numpy as np
from keras import layers as kl

import l2compare.porter.layers.activations as activations
from l2compare.porter.layers.registry import Ctx, Port, penalties, register


def same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """Keras/TF 'same': output ceil(size/stride); the extra pixel goes after (bottom/right)."""
    effective = (kernel - 1) * dilation + 1
    total = max((math.ceil(size / stride) - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def check_channels_last(ctx: Ctx) -> None:
    if getattr(ctx.layer, "data_format", "channels_last") != "channels_last":
        raise ctx.fail(f"data_format {ctx.layer.data_format!r} (only channels_last)")


def check_no_lora(ctx: Ctx) -> None:
    if getattr(ctx.layer, "lora_rank", None):
        raise ctx.fail("LoRA (lora_rank) is not carried")


def conv_state(ctx: Ctx, attr: str, use_bias: bool, kernel: str = "kernel"):
    """Keras kernel (*k, in, out) -> torch weight (out, in, *k).

    The same move serves a transposed convolution: Keras's (*k, out, in) -> torch's (in, out, *k)."""
    def read():
        k = ctx.weight(kernel)
        rank = k.ndim
        state = {f"{attr}.weight": k.transpose(rank - 1, rank - 2, *range(rank - 2)).copy()}
        if use_bias:
            state[f"{attr}.bias"] = ctx.weight("bias")
        return state
    return read


def depthwise_weight(kernel: np.ndarray) -> np.ndarray:
    """Keras depthwise kernel (*k, in, mult) -> torch grouped-conv weight (in·mult, 1, *k).

    TensorFlow's output channel c·mult + m is input channel c's m-th filter; torch's grouped conv
    (groups=in) gives output channel o to group o // mult: the same order, so a plain reshape."""
    *spatial, cin, mult = kernel.shape
    flat = kernel.reshape(*spatial, cin * mult)
    return np.moveaxis(flat, -1, 0)[:, None].copy()


# ---------------------------------------------------------------------------------------------
# Shared pieces: the padding, the constructor arguments, the forward line


def as_tuple(values) -> str:
    """A torch size argument: ``3`` for one spatial dim, ``(3, 2)`` for two."""
    values = tuple(int(v) for v in values)
    return str(values[0]) if len(values) == 1 else str(values)


def spatial_sizes(ctx: Ctx) -> tuple:
    return tuple(ctx.shape[:-1])


def padding_kind(ctx: Ctx, allowed=("valid", "same")) -> str:
    padding = ctx.layer.padding
    if not isinstance(padding, str) or padding.lower() not in allowed:
        raise ctx.fail(f"padding {padding!r} (only {', '.join(repr(a) for a in allowed)})")
    return padding.lower()


def conv_pads(ctx: Ctx, padding: str, kernel, strides, dilation) -> list[tuple[int, int]]:
    """(before, after) for each spatial dim, as Keras pads for ``padding``."""
    if padding == "valid":
        return [(0, 0)] * len(kernel)
    if padding == "causal":   # Conv1D: (k - 1)·d on the left, nothing on the right
        return [((kernel[0] - 1) * dilation[0], 0)]
    pads = []
    for size, k, s, d in zip(spatial_sizes(ctx), kernel, strides, dilation):
        if size < 0 and s != 1:
            raise ctx.fail("padding 'same' with a stride on an input of unknown size (the padding depends on it)")
        pads.append(same_pads(size if size >= 0 else 1, k, s, d))   # at stride 1: k_eff − 1 in all
    return pads


def fpad_tuple(pads: list[tuple[int, int]]) -> tuple:
    """F.pad's argument for channels-first spatial pads: the last dim first."""
    return tuple(p for before_after in reversed(pads) for p in before_after)


def split_padding(pads):
    """(the symmetric padding torch's conv can take, or None; the F.pad tuple, or None)."""
    if not any(b or a for b, a in pads):
        return None, None
    if all(b == a for b, a in pads):
        return as_tuple(b for b, _ in pads), None
    return None, fpad_tuple(pads)


def padding_note(ctx: Ctx, padding: str) -> list[str]:
    if padding == "causal":
        return [f"{ctx.layer.name}: 'causal' padding, (kernel − 1)·dilation zeros on the left only, "
                "as an explicit F.pad"]
    return [f"{ctx.layer.name}: 'same' padding with the odd pixel at the end (bottom/right), as Keras pads "
            "(torch's padding is symmetric), as an explicit F.pad"]


def conv_args(cin, cout, kernel, strides, dilation, groups, padding, bias) -> list[str]:
    args = [str(cin), str(cout), as_tuple(kernel)]
    if any(s != 1 for s in strides):
        args.append(f"stride={as_tuple(strides)}")
    if padding is not None:
        args.append(f"padding={padding}")
    if any(d != 1 for d in dilation):
        args.append(f"dilation={as_tuple(dilation)}")
    if groups != 1:
        args.append(f"groups={groups}")
    if not bias:
        args.append("bias=False")
    return args


def _padded(expr: str, fpad) -> str:
    return expr if fpad is None else f"F.pad({expr}, {fpad})"


def commented(lines: list[str], why: str) -> list[str]:
    """``lines`` with ``# why`` after the first (the one that holds the layer's call)."""
    return [lines[0] + f"  # {why}", *lines[1:]] if why else lines


def _pad_why(padding: str, fpad) -> str:
    if fpad is None:
        return ""
    return "causal: zeros on the left only" if padding == "causal" else "TF 'same': the odd pixel at the end"


def layer_penalties(ctx: Ctx, pairs) -> list:
    out = []
    for reg_attr, key, weight in pairs:
        out += penalties(ctx, reg_attr, key, weight)
    return out


def common_checks(ctx: Ctx) -> None:
    check_channels_last(ctx)
    check_no_lora(ctx)


# ---------------------------------------------------------------------------------------------
# Conv1D, Conv2D


@register(kl.Conv1D, kl.Conv2D, layout="cf")
def conv(ctx: Ctx) -> Port:
    layer, attr = ctx.layer, ctx.attr
    common_checks(ctx)
    rank = len(layer.kernel_size)
    padding = padding_kind(ctx, ("valid", "same", "causal") if rank == 1 else ("valid", "same"))
    kernel, strides, dilation = tuple(layer.kernel_size), tuple(layer.strides), tuple(layer.dilation_rate)
    pads = conv_pads(ctx, padding, kernel, strides, dilation)
    sym, fpad = split_padding(pads)   # causal (p, 0) is never symmetric: always an F.pad
    nn_conv = f"nn.Conv{rank}d"
    args = conv_args(ctx.shape[-1], layer.filters, kernel, strides, dilation, layer.groups, sym, layer.use_bias)
    act = activations.name_of(ctx, layer.activation)
    regs = layer_penalties(ctx, [("kernel_regularizer", f"{attr}.weight", "kernel")]
                 + ([("bias_regularizer", f"{attr}.bias", "bias")] if layer.use_bias else []))
    lines = activations.apply(ctx, act, f"self.{attr}({_padded('{x}', fpad)})", dim=1)
    return Port(ctx.out_shape, commented(lines, _pad_why(padding, fpad)),
                modules={attr: f"{nn_conv}({', '.join(args)})"}, state=conv_state(ctx, attr, layer.use_bias),
                penalties=regs, notes=padding_note(ctx, padding) if fpad is not None else [])


# ---------------------------------------------------------------------------------------------
# DepthwiseConv1D/2D, SeparableConv1D/2D


def _depthwise_module(ctx: Ctx, cin: int, mult: int, pads_sym, bias: bool) -> str:
    layer = ctx.layer
    rank = len(layer.kernel_size)
    args = conv_args(cin, cin * mult, layer.kernel_size, layer.strides, layer.dilation_rate, cin, pads_sym, bias)
    return f"nn.Conv{rank}d({', '.join(args)})"


@register(kl.DepthwiseConv1D, kl.DepthwiseConv2D, layout="cf")
def depthwise_conv(ctx: Ctx) -> Port:
    layer, attr = ctx.layer, ctx.attr
    common_checks(ctx)
    padding = padding_kind(ctx)
    cin, mult = ctx.shape[-1], layer.depth_multiplier
    pads = conv_pads(ctx, padding, tuple(layer.kernel_size), tuple(layer.strides), tuple(layer.dilation_rate))
    sym, fpad = split_padding(pads)

    def read():
        state = {f"{attr}.weight": depthwise_weight(ctx.weight("kernel"))}
        if layer.use_bias:
            state[f"{attr}.bias"] = ctx.weight("bias")
        return state

    act = activations.name_of(ctx, layer.activation)
    regs = layer_penalties(ctx, [("depthwise_regularizer", f"{attr}.weight", "kernel")]
                 + ([("bias_regularizer", f"{attr}.bias", "bias")] if layer.use_bias else []))
    # A grouped conv with groups=in (weight layout: depthwise_weight). No note: nothing to carry.
    lines = activations.apply(ctx, act, f"self.{attr}({_padded('{x}', fpad)})", dim=1)
    return Port(ctx.out_shape, commented(lines, _pad_why(padding, fpad)),
                modules={attr: _depthwise_module(ctx, cin, mult, sym, layer.use_bias)}, state=read,
                penalties=regs, notes=padding_note(ctx, padding) if fpad is not None else [])


@register(kl.SeparableConv1D, kl.SeparableConv2D, layout="cf")
def separable_conv(ctx: Ctx) -> Port:
    # Two submodules, not one nn.Sequential: their state-dict keys then say which Keras weight
    # they hold ("sep_depthwise.weight" is Keras's depthwise_kernel), and an uneven 'same' F.pad
    # goes before the depthwise conv alone.
    layer, attr = ctx.layer, ctx.attr
    common_checks(ctx)
    padding = padding_kind(ctx)
    rank = len(layer.kernel_size)
    cin, mult = ctx.shape[-1], layer.depth_multiplier
    pads = conv_pads(ctx, padding, tuple(layer.kernel_size), tuple(layer.strides), tuple(layer.dilation_rate))
    sym, fpad = split_padding(pads)
    dw, pw = f"{attr}_depthwise", f"{attr}_pointwise"
    pointwise = conv_args(cin * mult, layer.filters, (1,) * rank, (1,) * rank, (1,) * rank, 1, None, layer.use_bias)

    def read():
        k = ctx.weight("pointwise_kernel")   # (*1, in·mult, out)
        state = {f"{dw}.weight": depthwise_weight(ctx.weight("depthwise_kernel")),
                 f"{pw}.weight": k.transpose(rank + 1, rank, *range(rank)).copy()}
        if layer.use_bias:
            state[f"{pw}.bias"] = ctx.weight("bias")
        return state

    act = activations.name_of(ctx, layer.activation)
    regs = layer_penalties(ctx, [("depthwise_regularizer", f"{dw}.weight", "depthwise_kernel"),
                       ("pointwise_regularizer", f"{pw}.weight", "pointwise_kernel")]
                 + ([("bias_regularizer", f"{pw}.bias", "bias")] if layer.use_bias else []))
    notes = [f"{layer.name}: SeparableConv as a depthwise conv (groups=in, no bias) then a 1x1 pointwise conv "
             "that holds Keras's bias"]
    notes += padding_note(ctx, padding) if fpad is not None else []
    lines = activations.apply(ctx, act, f"self.{pw}(self.{dw}({_padded('{x}', fpad)}))", dim=1)
    return Port(ctx.out_shape, commented(lines, _pad_why(padding, fpad)),
                modules={dw: _depthwise_module(ctx, cin, mult, sym, False),
                         pw: f"nn.Conv{rank}d({', '.join(pointwise)})"},
                state=read, penalties=regs, notes=notes)
