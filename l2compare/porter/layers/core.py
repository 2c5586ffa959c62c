"""Dense, activations and Flatten, Dropout: the layers of the article's models."""
from __future__ import annotations

from keras import layers as kl

import l2compare.porter.layers.activations as activations
from l2compare.porter.layers.registry import Ctx, Port, penalties, register


def dense_state(ctx: Ctx, attr: str, use_bias: bool):
    """Keras kernel (in, out) -> torch Linear weight (out, in)."""
    def read():
        state = {f"{attr}.weight": ctx.weight("kernel").T.copy()}
        if use_bias:
            state[f"{attr}.bias"] = ctx.weight("bias")
        return state
    return read


@register(kl.Dense, layout="keras")
def dense(ctx: Ctx) -> Port:
    layer, attr = ctx.layer, ctx.attr
    act = activations.name_of(ctx, layer.activation)
    if layer.lora_rank:
        raise ctx.fail("LoRA (lora_rank) is not carried")
    bias = "" if layer.use_bias else ", bias=False"
    regs = penalties(ctx, "kernel_regularizer", f"{attr}.weight", "kernel")
    if layer.use_bias:
        regs += penalties(ctx, "bias_regularizer", f"{attr}.bias", "bias")
    # nn.Linear, like Dense, acts on the last axis of an input of any rank.
    return Port(ctx.out_shape, activations.apply(ctx, act, f"self.{attr}({{x}})", dim=-1),
                modules={attr: f"nn.Linear({ctx.shape[-1]}, {layer.units}{bias})"},
                state=dense_state(ctx, attr, layer.use_bias), penalties=regs)


@register(kl.Activation, layout="any")
def activation(ctx: Ctx) -> Port:
    act = activations.name_of(ctx, ctx.layer.activation)
    return Port(ctx.out_shape, activations.apply(ctx, act, "{x}", dim=ctx.dim(-1)))


@register(kl.ReLU, layout="any")
def relu(ctx: Ctx) -> Port:
    layer = ctx.layer
    if layer.negative_slope or layer.threshold:
        raise ctx.fail("ReLU with negative_slope or threshold")
    if layer.max_value is None:
        return Port(ctx.out_shape, ["{y} = F.relu({x})"])
    return Port(ctx.out_shape, [f"{{y}} = torch.clamp({{x}}, 0.0, {float(layer.max_value)!r})"])


@register(kl.Softmax, layout="any")
def softmax(ctx: Ctx) -> Port:
    axis = ctx.layer.axis
    if len(ctx.shapes) > 1:   # softmax(x, mask=m): the masked entries get probability 0 in Keras
        raise ctx.fail("a mask (a masked softmax is not carried)")
    if not isinstance(axis, int):
        raise ctx.fail(f"Softmax over axes {axis} (only one axis)")
    return Port(ctx.out_shape, activations.apply(ctx, "softmax", "{x}", dim=ctx.dim(axis)))


@register(kl.Flatten, layout="keras")
def flatten(ctx: Ctx) -> Port:
    # In Keras's layout, so the order is Keras's (H, W, C): the code generator permutes a
    # channels-first map back before this line (a missing permute is the classic port error).
    return Port(ctx.out_shape, ["{y} = torch.flatten({x}, 1)"])


@register(kl.Dropout, layout="any")
def dropout(ctx: Ctx) -> Port:
    layer = ctx.layer
    if layer.noise_shape is not None:
        raise ctx.fail("Dropout with a noise_shape")
    return Port(ctx.out_shape, [f"{{y}} = self.{ctx.attr}({{x}})"], modules={ctx.attr: f"nn.Dropout({layer.rate!r})"},
                notes=[f"{ctx.layer.name}: Dropout({layer.rate}) as nn.Dropout: identity at inference, the same "
                       "scaling by 1/(1−rate) in training, but a different random mask"])
