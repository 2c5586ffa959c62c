"""Pooling, padding, cropping and upsampling layers.

Windowed pooling runs channels first, as torch's does. Global pooling, padding, cropping and
nearest upsampling act on the axes Keras names, so they take either layout (``ctx.dim``) and
save the code generator a permute.
"""
from __future__ import annotations

from keras import layers as kl

import l2compare.porter.runtime.conv as runtime_conv
from l2compare.porter.layers.registry import Ctx, Port, register
from l2compare.porter.masks import mask_of
from l2compare.porter.layers.conv import check_channels_last, fpad_tuple, same_pads


def _size(values) -> str:
    values = tuple(int(v) for v in values)
    return str(values[0]) if len(values) == 1 else str(values)


@register(kl.MaxPooling1D, kl.MaxPooling2D, kl.AveragePooling1D, kl.AveragePooling2D, layout="cf")
def pool(ctx: Ctx) -> Port:
    layer = ctx.layer
    check_channels_last(ctx)
    padding = layer.padding
    if padding not in ("valid", "same"):
        raise ctx.fail(f"padding {layer.padding!r} (only 'valid' or 'same')")
    rank = len(layer.pool_size)
    is_max = isinstance(layer, (kl.MaxPooling1D, kl.MaxPooling2D))
    kernel, strides = tuple(layer.pool_size), tuple(layer.strides)
    fn = f"F.{'max' if is_max else 'avg'}_pool{rank}d"
    stride = "" if strides == kernel else f", stride={_size(strides)}"
    if padding == "valid":
        return Port(ctx.out_shape, [f"{{y}} = {fn}({{x}}, {_size(kernel)}{stride})"])
    pads = []
    for size, k, s in zip(ctx.shape[:-1], kernel, strides):
        if size < 0 and s != 1:
            raise ctx.fail("padding 'same' with a stride on an input of unknown size (the padding depends on it)")
        pads.append(same_pads(size if size >= 0 else 1, k, s, 1))
    if all(b == a for b, a in pads):   # symmetric: torch's own padding does what TF does
        pad = _size(b for b, _ in pads)
        if is_max:   # torch pads max pooling with −∞, as TF ignores the padding
            return Port(ctx.out_shape, [f"{{y}} = {fn}({{x}}, {_size(kernel)}{stride}, padding={pad})"])
        return Port(ctx.out_shape, [
            f"{{y}} = {fn}({{x}}, {_size(kernel)}{stride}, padding={pad}, count_include_pad=False)"
            "  # TF: the mean of the real pixels only"])
    fpad = fpad_tuple(pads)
    if is_max:
        padded = f"F.pad({{x}}, {fpad}, value=float(\"-inf\"))"
        return Port(ctx.out_shape, [f"{{y}} = {fn}({padded}, {_size(kernel)}{stride})"
                                    "  # TF 'same': uneven, the odd pixel at the end; padding never wins"],
                    notes=[f"{layer.name}: 'same' max pooling padded with −∞ unevenly, the odd pixel at the end, "
                           "as TensorFlow pads"])
    return Port(ctx.out_shape, [f"{{y}} = avg_pool_same({{x}}, {kernel}, {strides}, {fpad})"],
                helpers=(runtime_conv.avg_pool_same,),
                notes=[f"{layer.name}: 'same' average pooling padded unevenly (the odd pixel at the end) and "
                       "divided by the count of real pixels in each window, as TensorFlow does"])


@register(kl.GlobalAveragePooling1D, kl.GlobalAveragePooling2D, kl.GlobalMaxPooling1D, kl.GlobalMaxPooling2D,
          layout="any")
def global_pool(ctx: Ctx) -> Port:
    check_channels_last(ctx)
    layer = ctx.layer
    is_avg = isinstance(layer, (kl.GlobalAveragePooling1D, kl.GlobalAveragePooling2D))
    rank = len(ctx.shape) + 1
    dims = tuple(ctx.dim(a, rank) for a in range(1, rank - 1))
    dim = str(dims[0]) if len(dims) == 1 else str(dims)
    keep = ", keepdim=True" if layer.keepdims else ""
    mask = mask_of(ctx) if isinstance(layer, kl.GlobalAveragePooling1D) else None
    if mask is not None:
        # Keras's masked mean: where(mask, x, 0) summed over the steps, divided by the count of real steps
        # (a sequence with none gives 0/0 = NaN, in Keras too). The mask (N, T) gets the channel axis.
        m = f"{mask}.unsqueeze({ctx.dim(2, rank)})"
        return Port(ctx.out_shape, [f"{{y}} = torch.where({m}, {{x}}, 0).sum(dim={dim}{keep}) / "
                                    f"{m}.to({{x}}.dtype).sum(dim={dim}{keep})  # the mean of the unmasked steps"],
                    notes=[f"{layer.name}: the mean over the unmasked steps only, as Keras averages a masked input"])
    # amax, not max: like TF's reduce_max, it shares the gradient evenly between tied maxima.
    return Port(ctx.out_shape, [f"{{y}} = {{x}}.{'mean' if is_avg else 'amax'}(dim={dim}{keep})"])


def _pad_for(ctx: Ctx, spans: dict[int, tuple[int, int]]) -> tuple:
    """F.pad's tuple for (before, after) on Keras axes ``spans``, in this layout."""
    rank = len(ctx.shape) + 1
    by_dim = {ctx.dim(a, rank): span for a, span in spans.items()}
    # F.pad counts from the last dim: every dim after the first padded one is listed.
    return fpad_tuple([by_dim.get(d, (0, 0)) for d in range(min(by_dim), rank)])


@register(kl.ZeroPadding1D, kl.ZeroPadding2D, layout="any")
def zero_padding(ctx: Ctx) -> Port:
    check_channels_last(ctx)
    padding = ctx.layer.padding
    spans = {1: tuple(padding)} if isinstance(ctx.layer, kl.ZeroPadding1D) else \
        {1: tuple(padding[0]), 2: tuple(padding[1])}
    return Port(ctx.out_shape, [f"{{y}} = F.pad({{x}}, {_pad_for(ctx, spans)})"])


@register(kl.Cropping1D, kl.Cropping2D, layout="any")
def cropping(ctx: Ctx) -> Port:
    check_channels_last(ctx)
    crop = ctx.layer.cropping
    spans = {1: tuple(crop)} if isinstance(ctx.layer, kl.Cropping1D) else {1: tuple(crop[0]), 2: tuple(crop[1])}
    rank = len(ctx.shape) + 1
    by_dim = {ctx.dim(a, rank): span for a, span in spans.items()}
    index = []
    for d in range(1, max(by_dim) + 1):
        before, after = by_dim.get(d, (0, 0))
        index.append(f"{before or ''}:{-after if after else ''}")
    return Port(ctx.out_shape, [f"{{y}} = {{x}}[:, {', '.join(index)}]"])


@register(kl.UpSampling1D, layout="any")
def upsampling1d(ctx: Ctx) -> Port:
    size = int(ctx.layer.size)
    if size == 1:
        return Port(ctx.out_shape, ["{y} = {x}"])
    return Port(ctx.out_shape, [f"{{y}} = {{x}}.repeat_interleave({size}, dim={ctx.dim(1)})"])


@register(kl.UpSampling2D, layout="cf")
def upsampling2d(ctx: Ctx) -> Port:
    layer = ctx.layer
    check_channels_last(ctx)
    sh, sw = layer.size
    if layer.interpolation == "nearest":
        # Keras repeats rows and columns (ops.repeat); so does repeat_interleave, exactly.
        expr = "{x}"
        if sh != 1:
            expr += f".repeat_interleave({sh}, dim=2)"
        if sw != 1:
            expr += f".repeat_interleave({sw}, dim=3)"
        return Port(ctx.out_shape, [f"{{y}} = {expr}"])
    if layer.interpolation == "bilinear":
        if ctx.dtype != "float32":
            # tf.image.resize computes bilinear in float32 whatever the input's dtype (measured:
            # a float64 model's output equals its float32 twin's): not a float64 computation.
            raise ctx.fail("bilinear upsampling in float64 (TensorFlow computes it in float32)")
        return Port(ctx.out_shape, [f"{{y}} = F.interpolate({{x}}, scale_factor=({sh}, {sw}), mode=\"bilinear\", "
                                    "align_corners=False)  # TF's half-pixel centres"],
                    notes=[f"{layer.name}: bilinear upsampling as F.interpolate(align_corners=False), TensorFlow's "
                           "half-pixel centres; the two agree to float32 rounding (a few ulps), not bit for bit"])
    raise ctx.fail(f"interpolation {layer.interpolation!r} (only 'nearest', and 'bilinear' in float32: "
                   "TF's bicubic is Keys a = −0.5, torch's a = −0.75; lanczos and area have no torch twin)")
