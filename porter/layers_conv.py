"""Convolutions, channels first as torch runs them (the code generator permutes into and out of them)."""
from __future__ import annotations

import math

from keras import layers as kl

from porter import activations
from porter.emit import Ctx, Port, penalties, register


def same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """Keras/TF 'same': output ceil(size/stride); the extra pixel goes after (bottom/right)."""
    effective = (kernel - 1) * dilation + 1
    total = max((math.ceil(size / stride) - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def check_channels_last(ctx: Ctx) -> None:
    if getattr(ctx.layer, "data_format", "channels_last") != "channels_last":
        raise ctx.fail(f"data_format {ctx.layer.data_format!r} (only channels_last)")


def conv_state(ctx: Ctx, attr: str, use_bias: bool, kernel: str = "kernel"):
    """Keras kernel (*k, in, out) -> torch weight (out, in, *k)."""
    def read():
        k = ctx.weight(kernel)
        rank = k.ndim
        state = {f"{attr}.weight": k.transpose(rank - 1, rank - 2, *range(rank - 2)).copy()}
        if use_bias:
            state[f"{attr}.bias"] = ctx.weight("bias")
        return state
    return read


@register(kl.Conv2D, layout="cf")
def conv2d(ctx: Ctx) -> Port:
    layer, attr = ctx.layer, ctx.attr
    check_channels_last(ctx)
    if layer.padding not in ("valid", "same"):
        raise ctx.fail(f"padding {layer.padding!r} (only 'valid' or 'same')")
    h, w, c = ctx.shape
    (kh, kw), (sh, sw), (dh, dw) = layer.kernel_size, layer.strides, layer.dilation_rate
    pads = (0, 0, 0, 0)
    if layer.padding == "same":
        (top, bottom), (left, right) = same_pads(h, kh, sh, dh), same_pads(w, kw, sw, dw)
        pads = (left, right, top, bottom)
    args = [str(c), str(layer.filters), f"({kh}, {kw})"]
    if (sh, sw) != (1, 1):
        args.append(f"stride=({sh}, {sw})")
    if (dh, dw) != (1, 1):
        args.append(f"dilation=({dh}, {dw})")
    if layer.groups != 1:
        args.append(f"groups={layer.groups}")
    if not layer.use_bias:
        args.append("bias=False")
    notes = []
    inner = "{x}"
    if pads[0] == pads[1] and pads[2] == pads[3]:
        if any(pads):
            args.append(f"padding=({pads[2]}, {pads[0]})")
    else:
        inner = f"F.pad({{x}}, {pads})"
        notes.append(f"{layer.name}: 'same' padding with the odd pixel at the bottom/right, as Keras pads "
                     "(torch's padding is symmetric), as an explicit F.pad")
    act = activations.name_of(ctx, layer.activation)
    regs = penalties(ctx, "kernel_regularizer", f"{attr}.weight", "kernel")
    if layer.use_bias:
        regs += penalties(ctx, "bias_regularizer", f"{attr}.bias", "bias")
    return Port(ctx.out_shape, activations.apply(ctx, act, f"self.{attr}({inner})", dim=1),
                modules={attr: f"nn.Conv2d({', '.join(args)})"}, state=conv_state(ctx, attr, layer.use_bias),
                penalties=regs, notes=notes)
