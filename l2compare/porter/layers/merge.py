"""Merge layers (Add, Concatenate, ...) and the ``keras.ops`` calls a functional model records as nodes.

Merges are elementwise, so they work in either layout (the code generator brings mixed or
broadcasting inputs to Keras's layout first); Concatenate maps its axis with ``ctx.dim``.
A ``keras.ops`` node is ported where torch has the same function. A Python scalar argument is
weakly typed in Keras 3 (``ops.multiply(x, 0.1)`` on float64 uses 0.1 itself, measured), as in
torch, so it is written as is.
"""
from __future__ import annotations

from keras import layers as kl
from keras.src.ops import nn as ops_nn
from keras.src.ops import numpy as ops_np

from l2compare.porter.layers.registry import Ctx, Port, register


def _fold(ctx: Ctx, op: str) -> str:
    """x0 op x1 op x2 ..., left to right, the order Keras's merge layers apply it."""
    return f" {op} ".join(f"{{x{i}}}" for i in range(len(ctx.shapes)))


@register(kl.Add, layout="any")
def add(ctx: Ctx) -> Port:
    return Port(ctx.out_shape, ["{y} = " + _fold(ctx, "+")])


@register(kl.Subtract, layout="any")
def subtract(ctx: Ctx) -> Port:
    return Port(ctx.out_shape, ["{y} = {x0} - {x1}"])


@register(kl.Multiply, layout="any")
def multiply(ctx: Ctx) -> Port:
    return Port(ctx.out_shape, ["{y} = " + _fold(ctx, "*")])


@register(kl.Average, layout="any")
def average(ctx: Ctx) -> Port:
    # Keras sums left to right, then divides by the count (not a mean: the rounding differs).
    return Port(ctx.out_shape, [f"{{y}} = ({_fold(ctx, '+')}) / {len(ctx.shapes)}"])


@register(kl.Maximum, kl.Minimum, layout="any")
def extremum(ctx: Ctx) -> Port:
    fn = "torch.maximum" if isinstance(ctx.layer, kl.Maximum) else "torch.minimum"
    expr = "{x0}"
    for i in range(1, len(ctx.shapes)):
        expr = f"{fn}({expr}, {{x{i}}})"
    return Port(ctx.out_shape, ["{y} = " + expr])


@register(kl.Concatenate, layout="any")
def concatenate(ctx: Ctx) -> Port:
    inputs = ", ".join(f"{{x{i}}}" for i in range(len(ctx.shapes)))
    return Port(ctx.out_shape, [f"{{y}} = torch.cat([{inputs}], dim={ctx.dim(ctx.layer.axis)})"])


# keras.ops nodes ----------------------------------------------------------------------------

def _scalar(ctx: Ctx, value) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ctx.fail(f"argument {value!r} (only tensors and Python numbers are ported)")
    if isinstance(value, int):
        return repr(value)
    return repr(float(value))


def _operands(ctx: Ctx) -> list[str]:
    operands, i = [], 0
    for arg in ctx.node.args:
        if hasattr(arg, "_keras_history"):
            operands.append(f"{{x{i}}}")
            i += 1
        else:
            operands.append(_scalar(ctx, arg))
    return operands


_BINARY = {ops_np.Add: "{} + {}", ops_np.Subtract: "{} - {}", ops_np.Multiply: "{} * {}",
           ops_np.Divide: "{} / {}", ops_np.TrueDivide: "{} / {}",
           ops_np.Maximum: "torch.maximum({}, {})", ops_np.Minimum: "torch.minimum({}, {})",
           # the comparisons and logic Keras records for its masks (Embedding's x != 0, a merge's OR)
           ops_np.NotEqual: "{} != {}", ops_np.Equal: "{} == {}", ops_np.LogicalOr: "{} | {}",
           ops_np.LogicalAnd: "{} & {}"}
_UNARY = {ops_nn.Relu: "F.relu({})", ops_nn.Sigmoid: "torch.sigmoid({})", ops_np.Tanh: "torch.tanh({})",
          ops_np.Exp: "torch.exp({})", ops_np.Log: "torch.log({})", ops_np.Sqrt: "torch.sqrt({})",
          ops_np.Square: "torch.square({})", ops_np.Absolute: "torch.abs({})", ops_np.Negative: "-{}"}


@register(*_BINARY, layout="any")
def binary(ctx: Ctx) -> Port:
    operands = _operands(ctx)
    if len(operands) != 2 or ctx.node.kwargs:
        raise ctx.fail("an operation with other than two positional operands")
    # A scalar must be a tensor for torch.maximum/minimum.
    if "torch." in _BINARY[type(ctx.layer)] and any("{" not in o for o in operands):
        tensor = next(o for o in operands if "{" in o)
        operands = [o if "{" in o else f"torch.full_like({tensor}, {o})" for o in operands]
    return Port(ctx.out_shape, ["{y} = " + _BINARY[type(ctx.layer)].format(*operands)])


@register(*_UNARY, layout="any")
def unary(ctx: Ctx) -> Port:
    return Port(ctx.out_shape, ["{y} = " + _UNARY[type(ctx.layer)].format("{x}")])


@register(ops_np.Mean, ops_np.Sum, ops_np.Max, ops_np.Any, layout="keras")
def reduction(ctx: Ctx) -> Port:
    op = ctx.layer
    fn = {ops_np.Mean: "mean", ops_np.Sum: "sum", ops_np.Max: "amax", ops_np.Any: "any"}[type(op)]
    if op.axis is None:
        raise ctx.fail("a reduction over every axis, batch included (a model's output is per sample)")
    axes = tuple(op.axis) if isinstance(op.axis, (list, tuple)) else (op.axis,)
    if any(a % (len(ctx.shape) + 1) == 0 for a in axes):
        raise ctx.fail("a reduction over the batch axis")
    keep = ", keepdim=True" if op.keepdims else ""
    dims = axes[0] if len(axes) == 1 else axes
    return Port(ctx.out_shape, [f"{{y}} = {{x}}.{fn}(dim={dims}{keep})"])


@register(ops_np.Concatenate, layout="keras")
def ops_concatenate(ctx: Ctx) -> Port:
    inputs = ", ".join(f"{{x{i}}}" for i in range(len(ctx.shapes)))
    return Port(ctx.out_shape, [f"{{y}} = torch.cat([{inputs}], dim={ctx.layer.axis})"])


@register(ops_np.Transpose, layout="keras")
def transpose(ctx: Ctx) -> Port:
    axes = ctx.layer.axes
    if axes is None or axes[0] != 0:
        raise ctx.fail(f"a transpose that moves the batch axis (axes={axes})")
    return Port(ctx.out_shape, [f"{{y}} = {{x}}.permute{tuple(axes)}"])


@register(ops_np.OnesLike, ops_np.ZerosLike, layout="any")
def constant_like(ctx: Ctx) -> Port:
    if ctx.layer.dtype is not None:
        raise ctx.fail(f"dtype={ctx.layer.dtype!r} (ported: the input's dtype)")
    fn = "ones_like" if isinstance(ctx.layer, ops_np.OnesLike) else "zeros_like"
    return Port(ctx.out_shape, [f"{{y}} = torch.{fn}({{x}})"])


@register(ops_np.Cumsum, layout="keras")
def cumsum(ctx: Ctx) -> Port:
    # Positions as cumsum(ones_like(tokens), axis=1) - 1: how a functional model numbers its steps
    # (ops.arange there is a constant, computed once, and its Embedding drops out of the model).
    op = ctx.layer
    if op.axis is None or op.dtype is not None or op.axis % (len(ctx.shape) + 1) == 0:
        raise ctx.fail(f"cumsum with axis={op.axis}, dtype={op.dtype} (ported: along a non-batch axis, in the "
                       "input's dtype)")
    # torch would promote an int32 sum to int64; Keras keeps the input's dtype.
    return Port(ctx.out_shape, [f"{{y}} = torch.cumsum({{x}}, dim={op.axis}, dtype={{x}}.dtype)"])
