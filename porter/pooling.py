"""Pooling and padding layers, channels first as torch runs them."""
from __future__ import annotations

from keras import layers as kl

from porter.emit import Ctx, Port, register
from porter.layers_conv import check_channels_last


@register(kl.MaxPooling2D, kl.AveragePooling2D, layout="cf")
def pool2d(ctx: Ctx) -> Port:
    layer = ctx.layer
    check_channels_last(ctx)
    if layer.padding != "valid":
        # 'same' average pooling divides by the count of real pixels in each window, and
        # pads unevenly: not one torch pooling call; refused rather than approximated.
        raise ctx.fail(f"padding {layer.padding!r} (only 'valid')")
    fn = "F.max_pool2d" if isinstance(layer, kl.MaxPooling2D) else "F.avg_pool2d"
    return Port(ctx.out_shape, [f"{{y}} = {fn}({{x}}, {tuple(layer.pool_size)}, stride={tuple(layer.strides)})"])


@register(kl.GlobalAveragePooling2D, kl.GlobalMaxPooling2D, layout="cf")
def global_pool2d(ctx: Ctx) -> Port:
    check_channels_last(ctx)
    how = "mean" if isinstance(ctx.layer, kl.GlobalAveragePooling2D) else "amax"
    keep = ", keepdim=True" if ctx.layer.keepdims else ""
    return Port(ctx.out_shape, [f"{{y}} = {{x}}.{how}(dim=(2, 3){keep})"])


@register(kl.ZeroPadding2D, layout="cf")
def zero_padding2d(ctx: Ctx) -> Port:
    check_channels_last(ctx)
    (top, bottom), (left, right) = ctx.layer.padding
    return Port(ctx.out_shape, [f"{{y}} = F.pad({{x}}, ({left}, {right}, {top}, {bottom}))"])
