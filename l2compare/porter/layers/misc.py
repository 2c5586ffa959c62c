"""Embedding, the noise and dropout layers, ActivityRegularization, and the activation layers
LeakyReLU, ELU and PReLU.

The noise layers are the identity at inference, as in Keras; in training they draw from torch's
random stream, not TensorFlow's, so a training step matches Keras's in distribution only.
"""
from __future__ import annotations

import math

import keras
import numpy as np
from keras import layers as kl

from l2compare.porter.layers.registry import Ctx, Port, freeze, penalties, register
from l2compare.porter.layers.conv import check_channels_last

_RANDOM = "identity at inference; in training the same distribution as Keras's, from torch's random stream"


@register(kl.Embedding, layout="keras")
def embedding(ctx: Ctx) -> Port:
    layer, attr = ctx.layer, ctx.attr
    if getattr(layer, "quantization_mode", None):
        raise ctx.fail(f"quantization {layer.quantization_mode!r}")
    if layer.lora_enabled or layer.lora_rank:
        raise ctx.fail("LoRA (lora_rank) is not carried")
    dtype = str(keras.backend.standardize_dtype(ctx.node.inputs[0].dtype)) if hasattr(ctx, "node") else "int32"
    if dtype in ("int32", "int64"):
        forward = [f"{{y}} = self.{attr}({{x}})"]
    else:
        # Keras casts any other index dtype to int32 (a float index is truncated toward zero, as .long() does).
        forward = [f"{{y}} = self.{attr}({{x}}.long())  # Keras casts {dtype} indices to integers"]
    modules, regs = freeze(ctx, {attr: f"nn.Embedding({layer.input_dim}, {layer.output_dim})"},
                           penalties(ctx, "embeddings_regularizer", f"{attr}.weight", "embeddings"))
    return Port(ctx.out_shape, forward, modules=modules, state=lambda: {f"{attr}.weight": ctx.weight("embeddings")},
                penalties=regs,
                notes=[f"{layer.name}: nn.Embedding; a negative index, which Keras counts from the end "
                       "(ops.take), is an error in torch"])


_SPATIAL = {kl.SpatialDropout1D: "nn.Dropout1d", kl.SpatialDropout2D: "nn.Dropout2d",
            kl.SpatialDropout3D: "nn.Dropout3d"}


@register(*_SPATIAL, layout="cf")
def spatial_dropout(ctx: Ctx) -> Port:
    layer, attr = ctx.layer, ctx.attr
    check_channels_last(ctx)
    module = _SPATIAL[type(layer)]
    # Keras's noise shape (N, 1, ..., C) drops whole channels: torch's DropoutNd on (N, C, ...).
    return Port(ctx.out_shape, [f"{{y}} = self.{attr}({{x}})"], modules={attr: f"{module}({layer.rate!r})"},
                notes=[f"{layer.name}: {type(layer).__name__}({layer.rate}) as {module}, whole channels dropped and "
                       f"the rest scaled by 1/(1−rate): {_RANDOM}"])


def _identity(ctx: Ctx, why: str) -> Port:
    return Port(ctx.out_shape, [f"{{y}} = {{x}}  # {ctx.layer.name}: {why}"])


@register(kl.GaussianNoise, layout="any")
def gaussian_noise(ctx: Ctx) -> Port:
    layer = ctx.layer
    if not layer.stddev:
        return _identity(ctx, "GaussianNoise(0), the identity")
    return Port(ctx.out_shape, [f"{{y}} = {{x}} + {float(layer.stddev)!r} * torch.randn_like({{x}}) if self.training "
                                f"else {{x}}  # {layer.name}: GaussianNoise"],
                notes=[f"{layer.name}: GaussianNoise({layer.stddev}), x + N(0, stddev²): {_RANDOM}"])


@register(kl.GaussianDropout, layout="any")
def gaussian_dropout(ctx: Ctx) -> Port:
    layer = ctx.layer
    if not layer.rate:
        return _identity(ctx, "GaussianDropout(0), the identity")
    stddev = math.sqrt(layer.rate / (1.0 - layer.rate))   # as Keras computes it
    return Port(ctx.out_shape, [f"{{y}} = {{x}} * (1.0 + {stddev!r} * torch.randn_like({{x}})) if self.training "
                                f"else {{x}}  # {layer.name}: GaussianDropout, noise N(1, rate/(1−rate))"],
                notes=[f"{layer.name}: GaussianDropout({layer.rate}), x·N(1, rate/(1−rate)): {_RANDOM}"])


@register(kl.AlphaDropout, layout="any")
def alpha_dropout(ctx: Ctx) -> Port:
    layer, attr = ctx.layer, ctx.attr
    if layer.noise_shape is not None:
        raise ctx.fail("AlphaDropout with a noise_shape")
    if not layer.rate:
        return _identity(ctx, "AlphaDropout(0), the identity")
    # Keras's a·(x·keep + α'·(1−keep)) + b, α' = −1.6733·1.0507, is torch's alpha_dropout term for term.
    return Port(ctx.out_shape, [f"{{y}} = self.{attr}({{x}})"], modules={attr: f"nn.AlphaDropout({layer.rate!r})"},
                notes=[f"{layer.name}: AlphaDropout({layer.rate}) as nn.AlphaDropout, the same affine "
                       f"correction: {_RANDOM}"])


@register(kl.ActivityRegularization, layout="any")
def activity_regularization(ctx: Ctx) -> Port:
    # The identity; its L1/L2 activity terms are added by the code generator, as for any layer
    # with an activity_regularizer.
    return _identity(ctx, "ActivityRegularization, the identity (its penalty is added below)")


@register(kl.LeakyReLU, layout="any")
def leaky_relu(ctx: Ctx) -> Port:
    layer = ctx.layer
    # TensorFlow holds the slope in a float32 attribute (tf.nn.leaky_relu's alpha): a float64
    # model multiplies by the slope rounded to float32.
    slope = float(np.float32(layer.negative_slope))
    return Port(ctx.out_shape, [f"{{y}} = F.leaky_relu({{x}}, negative_slope={slope!r})"],
                notes=[f"{layer.name}: LeakyReLU negative_slope {layer.negative_slope} (Keras's default is 0.3, "
                       "torch's 0.01), rounded to float32 as TensorFlow holds it"])


@register(kl.ELU, layout="any")
def elu(ctx: Ctx) -> Port:
    return Port(ctx.out_shape, [f"{{y}} = F.elu({{x}}, alpha={float(ctx.layer.alpha)!r})"])


@register(kl.PReLU, layout="any")
def prelu(ctx: Ctx) -> Port:
    layer, attr = ctx.layer, ctx.attr
    keras_shape = tuple(int(d) for d in layer.alpha.shape)
    channels_first = ctx.layout == "cf" and len(keras_shape) >= 2
    shape = (keras_shape[-1], *keras_shape[:-1]) if channels_first else keras_shape

    def read():
        alpha = ctx.weight("alpha")
        return {attr: np.moveaxis(alpha, -1, 0).copy() if channels_first else alpha}

    # Keras's relu(x) − α·relu(−x): nn.PReLU has one α per channel (Keras's α has one per element
    # unless shared_axes), and its gradient at x = 0 is α where Keras's is 0.
    modules, regs = freeze(ctx, {attr: f"nn.Parameter(torch.zeros{shape})"},
                           penalties(ctx, "alpha_regularizer", attr, "alpha"))
    return Port(ctx.out_shape, [f"{{y}} = F.relu({{x}}) - self.{attr} * F.relu(-{{x}})  # {layer.name}: PReLU, "
                                "as Keras writes it"],
                modules=modules, state=read, penalties=regs,
                notes=[f"{layer.name}: PReLU as relu(x) − α·relu(−x), α of Keras's shape {keras_shape}"
                       + (" moved channels first" if channels_first else "")])


def _application_layers():
    """The layers keras.applications defines for itself (ConvNeXt's, InceptionResNetV2's): they ship with
    Keras, so a model file that uses them loads in safe mode, and they are ported by class."""
    from keras.src.applications.convnext import LayerScale, StochasticDepth
    from keras.src.applications.inception_resnet_v2 import CustomScaleLayer

    return LayerScale, StochasticDepth, CustomScaleLayer


_LAYER_SCALE, _STOCHASTIC_DEPTH, _CUSTOM_SCALE = _application_layers()


@register(_LAYER_SCALE, layout="any")
def layer_scale(ctx: Ctx) -> Port:
    layer, attr = ctx.layer, ctx.attr
    # x * γ, γ of shape (C,) on the channel axis: broadcast in channels first, it needs (C, 1, ...).
    trailing = len(ctx.shape) - 1 if ctx.layout == "cf" else 0
    view = f".view(-1{', 1' * trailing})" if trailing else ""
    modules, _ = freeze(ctx, {attr: f"nn.Parameter(torch.zeros({layer.projection_dim}))"}, [])
    return Port(ctx.out_shape, [f"{{y}} = {{x}} * self.{attr}{view}  # {layer.name}: LayerScale"], modules=modules,
                state=lambda: {attr: ctx.weight("gamma")},
                notes=[f"{layer.name}: ConvNeXt's LayerScale, x·γ with γ a trained weight per channel"])


@register(_STOCHASTIC_DEPTH, layout="any")
def stochastic_depth(ctx: Ctx) -> Port:
    layer, rate = ctx.layer, float(ctx.layer.drop_path_rate)
    if not rate:
        return _identity(ctx, "StochasticDepth(0), the identity")
    keep, ones = 1.0 - rate, ", 1" * len(ctx.shape)
    # Keras: (x / keep) · floor(keep + U[0, 1)), one draw per sample, in training only.
    return Port(ctx.out_shape, [
        f"{{y}} = {{x}} / {keep!r} * torch.floor({keep!r} + torch.rand({{x}}.shape[0]{ones}, dtype={{x}}.dtype)) "
        f"if self.training else {{x}}  # {layer.name}: StochasticDepth"],
        notes=[f"{layer.name}: StochasticDepth({rate}), each sample's residual branch dropped with that "
               f"probability: {_RANDOM}"])


@register(_CUSTOM_SCALE, layout="any")
def custom_scale(ctx: Ctx) -> Port:
    # InceptionResNetV2's residual: inputs[0] + inputs[1] * scale (a Python float, as TF multiplies it).
    return Port(ctx.out_shape, [f"{{y}} = {{x0}} + {{x1}} * {float(ctx.layer.scale)!r}  # {ctx.layer.name}: "
                                "CustomScaleLayer"])


@register(kl.Identity, layout="any")
def identity(ctx: Ctx) -> Port:
    return _identity(ctx, "Identity")
