"""Dense, activations and Flatten, Dropout (with a noise shape), ReLU with all its arguments."""
from __future__ import annotations

import numpy as np
from keras import layers as kl

import l2compare.porter.layers.activations as activations
from l2compare.porter.layers.registry import Ctx, Port, applied, penalties, register


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
    """Keras's activations.ReLU.static_call, step for step. TensorFlow rounds the values Keras casts with
    ops.cast (the threshold in the comparison, max_value) through float32 (``applied``); those it adds
    or multiplies as Python floats (the threshold and slope of the negative part) stay exact."""
    layer = ctx.layer
    slope, top, t = float(layer.negative_slope), layer.max_value, float(layer.threshold)
    if top is None and not t:
        if not slope:
            return Port(ctx.out_shape, ["{y} = F.relu({x})"])
        # tf.nn.leaky_relu holds its slope in a float32 attribute, as for LeakyReLU.
        return Port(ctx.out_shape, [f"{{y}} = F.leaky_relu({{x}}, negative_slope={float(np.float32(slope))!r})"])
    # One expression: the output variable may be the input's, so no line may read {x} after writing {y}.
    if t:
        expr = f"torch.where({{x}} > {applied(t)!r}, {{x}}, torch.zeros_like({{x}}))"  # x above the threshold, else 0
    elif top is not None and float(top) == 6.0:
        expr, top = "F.relu6({x})", None
    else:
        expr = "F.relu({x})"
    if top is not None:
        expr = f"torch.clamp({expr}, 0.0, {applied(float(top))!r})"
    if slope:
        expr += f" - {slope!r} * F.relu(-{{x}} + {t!r})" if t else f" - {slope!r} * F.relu(-{{x}})"
    lines = ["{y} = " + expr]
    return Port(ctx.out_shape, lines, notes=[f"{layer.name}: ReLU(max_value={layer.max_value}, "
                                             f"negative_slope={slope}, threshold={t}) as Keras computes it"])


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
    if layer.noise_shape is None:
        return Port(ctx.out_shape, [f"{{y}} = self.{ctx.attr}({{x}})"],
                    modules={ctx.attr: f"nn.Dropout({layer.rate!r})"},
                    notes=[f"{layer.name}: Dropout({layer.rate}) as nn.Dropout: identity at inference, the same "
                           "scaling by 1/(1−rate) in training, but a different random mask"])
    # A noise shape (EfficientNet's (None, 1, 1, 1): one draw per sample, "drop connect"): a mask of
    # that shape, the batch axis where Keras has None, moved to the layout the input arrives in.
    shape = [-1 if d is None else int(d) for d in layer.noise_shape]
    if ctx.layout == "cf" and len(shape) > 2:
        shape = [shape[0], shape[-1], *shape[1:-1]]
    size = ", ".join("{x}.shape[0]" if d == -1 else str(d) for d in shape)
    keep = 1.0 - layer.rate
    return Port(ctx.out_shape, [
        f"{{y}} = {{x}} * (torch.rand({size}, dtype={{x}}.dtype) >= {layer.rate!r}) / {keep!r} "
        f"if self.training and {layer.rate!r} > 0 else {{x}}  # {layer.name}: Dropout, noise_shape "
        f"{tuple(layer.noise_shape)}"],
        notes=[f"{layer.name}: Dropout({layer.rate}, noise_shape={tuple(layer.noise_shape)}): one draw per "
               "mask entry, broadcast; identity at inference, a different random mask in training"])
