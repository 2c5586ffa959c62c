"""Reshape, Permute and RepeatVector. Their axes are Keras's: Reshape and RepeatVector take Keras's
layout (a channels-first tensor is permuted back first, or a reshape would read the elements in
another order); Permute takes either and returns Keras's layout."""
from __future__ import annotations

from keras import layers as kl

from l2compare.porter.layers.registry import Ctx, Port, register


@register(kl.Reshape, layout="keras")
def reshape(ctx: Ctx) -> Port:
    # Keras's target_shape with its -1 resolved; -1 stays only where the size is not known
    # (at most one: Keras's target_shape has no None).
    target = tuple(ctx.out_shape)
    dims = ", ".join(str(d) for d in target)
    return Port(ctx.out_shape, [f"{{y}} = {{x}}.reshape({{x}}.shape[0], {dims})"])


@register(kl.Permute, layout="any")
def permute(ctx: Ctx) -> Port:
    # Keras numbers the axes from 1, without the batch axis; torch's permute names every dim. A
    # channels-first input is permuted straight into Keras's result (one permute, not two).
    dims = [ctx.dim(int(a)) for a in ctx.layer.dims]
    why = f"  # Keras's Permute{tuple(ctx.layer.dims)}" + ("" if ctx.layout == "keras" else ", from channels first")
    return Port(ctx.out_shape, [f"{{y}} = {{x}}.permute(0, {', '.join(str(d) for d in dims)}){why}"], layout="keras")


@register(kl.RepeatVector, layout="keras")
def repeat_vector(ctx: Ctx) -> Port:
    # (N, F) -> (N, n, F): each sample's vector n times.
    return Port(ctx.out_shape, [f"{{y}} = {{x}}.unsqueeze(1).repeat(1, {int(ctx.layer.n)}, 1)"])
