"""BatchNormalization and LayerNormalization, with Keras's defaults and Keras's arithmetic.

BatchNormalization takes any layout: it maps its Keras axis with ``ctx.dim``, so between two
convolutions it runs channels first and costs no permute. It is ``KerasBatchNorm`` (copied into
the generated file), not nn.BatchNorm2d: torch updates running_var with the unbiased batch
variance, Keras with the biased one (``comparisons/test_port_norm.py`` measures the gap).
LayerNormalization over the trailing axes is nn.LayerNorm with Keras's epsilon. The preprocessing
layers the applications start with, Rescaling and Normalization, are here too: fixed affine maps.
"""
from __future__ import annotations

import numpy as np
from keras import layers as kl

from l2compare.porter.layers.registry import Ctx, Port, freeze, penalties, register
from l2compare.porter.runtime.norm import KerasBatchNorm, KerasNormalization

_BN_DEFAULTS = {"dim": 1, "eps": 1e-3, "momentum": 0.99, "center": True, "scale": True, "frozen": False}


@register(kl.BatchNormalization, layout="any")
def batch_normalization(ctx: Ctx) -> Port:
    layer, attr = ctx.layer, ctx.attr
    if len(ctx.shapes) != 1:   # bn(x, mask=m): the batch statistics would skip the masked steps
        raise ctx.fail("a mask passed to its call (masked batch statistics are not carried)")
    if layer.renorm:
        raise ctx.fail("renorm=True (batch renormalization is not carried)")
    if layer.synchronized:
        raise ctx.fail("synchronized=True (cross-replica statistics, computed as E[x²]−E[x]², are not carried)")
    rank = len(ctx.shape) + 1
    axis = layer.axis % rank
    if axis == 0:
        raise ctx.fail("axis 0 (the batch axis)")
    features = ctx.shape[axis - 1]
    settings = {"dim": ctx.dim(axis), "eps": layer.epsilon, "momentum": layer.momentum, "center": layer.center,
                "scale": layer.scale, "frozen": not layer.trainable}
    args = [str(features)] + [f"{k}={v!r}" for k, v in settings.items() if v != _BN_DEFAULTS[k]]

    def read():
        state = {f"{attr}.running_mean": ctx.weight("moving_mean"),
                 f"{attr}.running_var": ctx.weight("moving_variance")}
        if layer.scale:
            state[f"{attr}.weight"] = ctx.weight("gamma")
        if layer.center:
            state[f"{attr}.bias"] = ctx.weight("beta")
        return state

    regs = penalties(ctx, "gamma_regularizer", f"{attr}.weight", "gamma") if layer.scale else []
    if layer.center:
        regs += penalties(ctx, "beta_regularizer", f"{attr}.bias", "beta")
    if not layer.trainable:
        regs = []   # Keras adds the regularizers of trainable weights only (Layer._get_regularization_losses)
    note = (f"{layer.name}: KerasBatchNorm, Keras's arithmetic: momentum {layer.momentum} (torch's convention: "
            f"{1 - layer.momentum:.3g}), eps {layer.epsilon}, moving variance moved with the biased batch variance "
            "(nn.BatchNorm's running_var takes the unbiased one)")
    if not layer.trainable:
        note += "; trainable=False, so it normalizes with the moving statistics in training too, as Keras does"
    return Port(ctx.out_shape, [f"{{y}} = self.{attr}({{x}})"], modules={attr: f"KerasBatchNorm({', '.join(args)})"},
                state=read, penalties=regs, notes=[note], helpers=(KerasBatchNorm,))


@register(kl.LayerNormalization, layout="keras")
def layer_normalization(ctx: Ctx) -> Port:
    layer, attr = ctx.layer, ctx.attr
    if layer.rms_scaling:
        raise ctx.fail("rms_scaling=True (deprecated in Keras: it divides by the standard deviation without "
                       "centering; use RMSNormalization)")
    rank = len(ctx.shape) + 1
    axes = sorted(a % rank for a in (layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]))
    if 0 in axes or axes != list(range(rank - len(axes), rank)):
        raise ctx.fail(f"axis {layer.axis} (nn.LayerNorm normalizes the trailing axes: only those are carried)")
    shape = tuple(ctx.shape[a - 1] for a in axes)
    shape_src = str(shape[0]) if len(shape) == 1 else str(shape)
    args = [shape_src, f"eps={layer.epsilon!r}"]
    forward = f"{{y}} = self.{attr}({{x}})"
    beta = {}
    if not layer.scale:
        args.append("elementwise_affine=False")
        if layer.center:   # β without γ: nn.LayerNorm has no such mode, so β is a parameter of its own
            beta[f"{attr}_beta"] = f"nn.Parameter(torch.zeros({shape_src}))"
            forward += f" + self.{attr}_beta  # center=True, scale=False: β only"
    elif not layer.center:
        args.append("bias=False")
    norm = f"nn.LayerNorm({', '.join(args)})"
    beta_key = f"{attr}.bias" if layer.scale else f"{attr}_beta"

    def read():
        state = {}
        if layer.scale:
            state[f"{attr}.weight"] = np.reshape(ctx.weight("gamma"), shape)
        if layer.center:
            state[beta_key] = np.reshape(ctx.weight("beta"), shape)
        return state

    regs = penalties(ctx, "gamma_regularizer", f"{attr}.weight", "gamma") if layer.scale else []
    if layer.center:
        regs += penalties(ctx, "beta_regularizer", beta_key, "beta")
    weighted, regs = freeze(ctx, {attr: norm} if layer.scale else beta, regs)
    modules = {attr: norm, **weighted}
    return Port(ctx.out_shape, [forward], modules=modules, state=read, penalties=regs,
                notes=[f"{layer.name}: nn.LayerNorm with Keras's eps {layer.epsilon} (torch's default: 1e-5)"])


def _cast(ctx: Ctx, value) -> np.ndarray:
    """``backend.cast(value, dtype)`` as Keras computes it (TensorFlow rounds a Python float through float32)."""
    import keras

    return np.asarray(keras.ops.convert_to_numpy(keras.ops.cast(value, ctx.dtype)), np.float64)


def _constant(values: np.ndarray) -> str:
    if values.ndim == 0:
        return repr(float(values))
    return f"torch.tensor({[float(v) for v in values.ravel()]!r}).view{tuple(values.shape)}.to({{x}}.dtype)"


@register(kl.Rescaling, layout="keras")
def rescaling(ctx: Ctx) -> Port:
    layer = ctx.layer
    # Keras: cast(inputs, dtype) * cast(scale, dtype) + cast(offset, dtype), scale and offset broadcast
    # against the channels-last input (a list scale is one factor per channel).
    scale, offset = _cast(ctx, layer.scale), _cast(ctx, layer.offset)
    expr = f"{{x}}.to(torch.{ctx.dtype}) * {_constant(scale)}"
    if offset.ndim or float(offset) != 0.0:
        expr += f" + {_constant(offset)}"
    return Port(ctx.out_shape, ["{y} = " + expr],
                notes=[f"{layer.name}: Rescaling(scale, offset) with the factors cast as Keras casts them"])


@register(kl.Normalization, layout="keras")
def normalization(ctx: Ctx) -> Port:
    import keras

    layer, attr = ctx.layer, ctx.attr
    mean = np.asarray(keras.ops.convert_to_numpy(layer.mean))
    # max(√var, ε): ε = backend.epsilon() as ops.maximum converts it (a Python float: float32 first on TF).
    zero = keras.ops.zeros((), ctx.dtype)
    eps = float(keras.ops.convert_to_numpy(keras.ops.maximum(zero, keras.backend.epsilon())))
    args = [str(tuple(mean.shape)), repr(eps)] + (["invert=True"] if layer.invert else [])

    def read():
        return {f"{attr}.mean": np.asarray(keras.ops.convert_to_numpy(layer.mean)),
                f"{attr}.variance": np.asarray(keras.ops.convert_to_numpy(layer.variance))}

    return Port(ctx.out_shape, [f"{{y}} = self.{attr}({{x}})"],
                modules={attr: f"KerasNormalization({', '.join(args)})"}, state=read, helpers=(KerasNormalization,),
                notes=[f"{layer.name}: Normalization{' (invert)' if layer.invert else ''} with Keras's mean and "
                       "variance as buffers (not trained), ε = keras.backend.epsilon() as in Keras"])
