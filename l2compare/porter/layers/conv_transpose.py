"""Conv1DTranspose and Conv2DTranspose, channels first: torch's ConvTranspose with the padding,
output_padding and end crop that give TensorFlow's output (the gradient of a conv)."""
from __future__ import annotations

from keras import layers as kl

import l2compare.porter.layers.activations as activations
from l2compare.porter.layers.registry import Ctx, Port, register
from l2compare.porter.layers.conv import (as_tuple, commented, common_checks, conv_state, layer_penalties,
    padding_kind, spatial_sizes)


def transpose_out(size: int, k_eff: int, s: int, output_padding, padding: str) -> int:
    """Keras's output size of a transposed conv (backend_utils._get_output_shape_given_tf_padding)."""
    if padding == "valid":
        extra = max(k_eff, s) - k_eff if output_padding is None else output_padding
        return (size - 1) * s + k_eff + extra
    return size * s if output_padding is None else (size - 1) * s + k_eff % 2 + output_padding


def transpose_geometry(ctx: Ctx, size: int, k: int, s: int, d: int, output_padding, padding: str):
    """(torch padding, torch output_padding, pixels to crop at the end) that give Keras's output.

    TensorFlow's transposed conv is the gradient of a conv from ``out`` pixels to ``size``: of the
    full result, (size − 1)·s + k_eff pixels long, it keeps ``out`` pixels from ``before``, the
    forward conv's left padding (total // 2 for 'same', 0 for 'valid'), with zeros (then the bias)
    past its end. torch keeps from ``padding`` to full − padding + output_padding. None of the
    three depends on ``size`` (each is a function of k_eff, s and output_padding): an axis of
    unknown size is worked out at a stand-in size."""
    size = size if size > 0 else 8
    k_eff = (k - 1) * d + 1
    out = transpose_out(size, k_eff, s, output_padding, padding)
    full = (size - 1) * s + k_eff
    if padding == "same":
        forward_out = -(-out // s)
        if forward_out != size:
            # Keras builds such a layer, but TensorFlow's own call fails on it.
            raise ctx.fail(f"output_padding {ctx.layer.output_padding}: an axis of {size} pixels becomes {out}, "
                           f"which a 'same' conv maps back to {forward_out}, not {size} (TensorFlow refuses it too)")
        before = max((size - 1) * s + k_eff - out, 0) // 2
    else:
        before = 0
    extra = out + 2 * before - full   # what torch must add at the end (output_padding), or crop if < 0
    if extra >= max(s, d):   # not reached: Keras's output_padding < stride keeps it below
        raise ctx.fail(f"output size {out} needs output_padding {extra} >= stride {s} in torch")
    return before, max(extra, 0), max(-extra, 0)


@register(kl.Conv1DTranspose, kl.Conv2DTranspose, layout="cf")
def conv_transpose(ctx: Ctx) -> Port:
    layer, attr = ctx.layer, ctx.attr
    common_checks(ctx)
    padding = padding_kind(ctx)
    rank = len(layer.kernel_size)
    kernel, strides, dilation = tuple(layer.kernel_size), tuple(layer.strides), tuple(layer.dilation_rate)
    output_padding = layer.output_padding or (None,) * rank
    geometry = [transpose_geometry(ctx, *args, padding)
                for args in zip(spatial_sizes(ctx), kernel, strides, dilation, output_padding)]
    args = [str(ctx.shape[-1]), str(layer.filters), as_tuple(kernel)]
    if any(s != 1 for s in strides):
        args.append(f"stride={as_tuple(strides)}")
    if any(g[0] for g in geometry):
        args.append(f"padding={as_tuple(g[0] for g in geometry)}")
    if any(g[1] for g in geometry):
        args.append(f"output_padding={as_tuple(g[1] for g in geometry)}")
    if any(d != 1 for d in dilation):
        args.append(f"dilation={as_tuple(dilation)}")
    if not layer.use_bias:
        args.append("bias=False")
    expr = f"self.{attr}({{x}})"
    notes, why = [], ""
    if any(g[2] for g in geometry):
        # TF's 'same' drops the odd pixel at the end; torch's padding crops both ends evenly.
        why = "TF 'same': the odd pixel is cropped at the end"
        expr = f"{expr}[..., {', '.join(f':-{g[2]}' if g[2] else ':' for g in geometry)}]"
        notes.append(f"{layer.name}: 'same' transposed conv cropped as TensorFlow crops it (the odd pixel at the "
                     "end; torch's padding crops both ends evenly), as a slice")
    act = activations.name_of(ctx, layer.activation)
    regs = layer_penalties(ctx, [("kernel_regularizer", f"{attr}.weight", "kernel")]
                 + ([("bias_regularizer", f"{attr}.bias", "bias")] if layer.use_bias else []))
    return Port(ctx.out_shape, commented(activations.apply(ctx, act, expr, dim=1), why),
                modules={attr: f"nn.ConvTranspose{rank}d({', '.join(args)})"},
                state=conv_state(ctx, attr, layer.use_bias), penalties=regs, notes=notes)
