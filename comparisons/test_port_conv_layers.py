"""Porting single convolution, pooling and upsampling layers: a float64 sweep over kernel, stride,
dilation, padding, groups and output_padding; frozen depthwise and separable convs; bilinear upsampling
in float32; and every refusal, naming the layer. Models that chain the layers: test_port_conv.py.
"""
import keras
import numpy as np
import pytest
from keras import layers, regularizers

from comparisons import portcheck
from l2compare.porter import PortError, keras_to_torch

DTYPES = ["float32", "float64"]


def _l2(lam=1e-2):
    return regularizers.l2(lam)


SWEEP_SIZES = (7, 8)


def _sweep_layers():
    """Single layers over kernel, stride, dilation, padding, groups / multiplier and output_padding."""
    L, d = layers, dict(dtype="float64")
    for rank, k, s, dil, pad in [(r, k, s, dl, p) for r in (1, 2) for k in (2, 3, 4) for s in (1, 2, 3)
                                 for dl in (1, 2) for p in ("valid", "same", "causal")
                                 if not (s > 1 and dl > 1) and not (r == 2 and p == "causal")]:
        conv = L.Conv1D if rank == 1 else L.Conv2D
        yield rank, conv(4, k, strides=s, dilation_rate=dil, padding=pad, groups=2, **d)
        if pad == "causal":
            continue
        dw = L.DepthwiseConv1D if rank == 1 else L.DepthwiseConv2D
        yield rank, dw(k, strides=s, dilation_rate=dil, padding=pad, depth_multiplier=2, **d)
        sep = L.SeparableConv1D if rank == 1 else L.SeparableConv2D
        yield rank, sep(3, k, strides=s, dilation_rate=dil, padding=pad, **d)
        if dil == 1:   # dilated transposed convs: see test_dilated_transposed_convs
            tr = L.Conv1DTranspose if rank == 1 else L.Conv2DTranspose
            for op in (None, *range(s)):
                if pad == "same" and op is not None and not 1 <= k % 2 + op <= s:
                    continue   # TensorFlow's own call refuses it (tested in the refusals)
                yield rank, tr(3, k, strides=s, padding=pad, output_padding=op, **d)
            for pool in ((L.MaxPooling1D, L.AveragePooling1D) if rank == 1 else (L.MaxPooling2D, L.AveragePooling2D)):
                yield rank, pool(k, strides=s, padding=pad, **d)


def test_single_layer_sweep_float64(keras_seed):
    """Every combination Keras runs, forward in float64, at an odd and an even size (where 'same'
    pads evenly or not): a wrong padding side, crop or channel order shows at 1e-12."""
    keras_seed(33)
    rng = np.random.default_rng(34)
    count = 0
    for size in SWEEP_SIZES:
        for rank, layer in _sweep_layers():
            shape = (size, 4) if rank == 1 else (size, size - 1, 4)
            try:
                km = keras.Sequential([keras.Input(shape, dtype="float64"), layer])
            except ValueError:   # the input is too small for this kernel: Keras refuses it
                continue
            for v in km.weights:
                v.assign(rng.normal(size=v.shape))
            x = rng.normal(size=(2, *shape))
            try:
                portcheck.assert_forward(km, x)
            except AssertionError as e:
                raise AssertionError(f"{type(layer).__name__} {layer.get_config()}: {e}") from None
            count += 1
    assert count > 500, count


def test_frozen_depthwise_and_separable(keras_seed):
    """trainable=False: Keras neither trains the weights nor adds their penalties; both of a
    separable conv's torch modules are frozen."""
    keras_seed(35)
    d = dict(dtype="float64")
    km = keras.Sequential([
        keras.Input((9, 8, 3), dtype="float64"),
        layers.DepthwiseConv2D(3, depth_multiplier=2, depthwise_regularizer=_l2(), trainable=False, **d),
        layers.SeparableConv2D(4, 3, depthwise_regularizer=_l2(), pointwise_regularizer=_l2(), trainable=False, **d),
        layers.Conv2D(2, 2, kernel_regularizer=_l2(), **d),
        layers.GlobalAveragePooling2D(**d),
    ])
    portcheck.randomize_normal(km, 36)
    x, y = portcheck.model_data(km, "mse", 37)
    tm = portcheck.assert_forward(km, x)
    portcheck.assert_gradients(km, x, y, loss="mse", tm=tm)
    trained = [n for n, p in tm.named_parameters() if p.requires_grad]
    assert trained == [f"{km.layers[2].name}.weight", f"{km.layers[2].name}.bias"]


def test_bilinear_upsampling_float32(keras_seed):
    """Keras's bilinear UpSampling2D is tf.image.resize with half-pixel centres: torch's
    F.interpolate(align_corners=False), to float32 rounding."""
    keras_seed(24)
    d = dict(dtype="float32")
    km = keras.Sequential([keras.Input((5, 4, 2)), layers.Conv2D(3, 2, padding="same", **d),
                           layers.UpSampling2D((3, 2), interpolation="bilinear", **d),
                           layers.Conv2D(2, 3, kernel_regularizer=_l2(), **d)])
    portcheck.randomize_normal(km, 25)
    x, y = portcheck.model_data(km, "mse", 26)
    tm = portcheck.assert_forward(km, x)
    portcheck.assert_gradients(km, x, y, loss="mse", tm=tm)


def _one(layer, shape, dtype="float32"):
    return keras.Sequential([keras.Input(shape, dtype=dtype), layer])


@pytest.mark.parametrize("make,message", [
    (lambda: _one(layers.UpSampling2D(2, interpolation="bilinear", dtype="float64", name="up"), (4, 4, 2),
                  "float64"), r"'up' \(UpSampling2D\).*bilinear upsampling in float64"),
    (lambda: _one(layers.UpSampling2D(2, interpolation="bicubic", name="up"), (4, 4, 2)),
     r"'up' \(UpSampling2D\).*interpolation 'bicubic'"),
    (lambda: _one(layers.Conv2D(3, 3, lora_rank=2, name="c"), (6, 6, 2)), r"'c' \(Conv2D\).*LoRA"),
    (lambda: _one(layers.Conv1D(3, 3, strides=2, padding="same", name="c"), (None, 2)),
     r"'c' \(Conv1D\).*unknown size"),
    (lambda: _one(layers.MaxPooling1D(2, padding="same", name="p"), (None, 2)), r"'p' \(MaxPooling1D\).*unknown size"),
    # Keras builds this one but its own call fails (TF: the output size does not map back).
    (lambda: _one(layers.Conv2DTranspose(3, 4, strides=2, padding="same", output_padding=0, name="t"), (5, 5, 2)),
     r"'t' \(Conv2DTranspose\).*output_padding"),
    (lambda: _one(layers.DepthwiseConv2D(3, data_format="channels_first", name="dw"), (2, 6, 6)),
     r"'dw' \(DepthwiseConv2D\).*channels_first"),
    (lambda: _one(layers.SeparableConv2D(3, 3, depthwise_regularizer=lambda w: 0.0 * w.sum(), name="s"),
                  (6, 6, 2)), r"'s' \(SeparableConv2D\).*depthwise_regularizer"),
])
def test_refusals_name_the_layer(make, message):
    with pytest.raises(PortError, match=message):
        keras_to_torch(make())
