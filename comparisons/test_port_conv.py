"""Porting convolutions, pooling, padding/cropping/upsampling and shape layers: forward, gradients
(data loss + every Keras penalty) and the standalone file, in float32 and float64.

Each model chains several of the layers, with the settings where Keras and torch part ways: uneven
'same' padding (the odd pixel after), 'causal' padding, groups, dilation, depth multipliers (the
depthwise channel order), transposed convs whose 'same' output torch cannot crop evenly, 'same'
pooling (−∞ for max, the count of real pixels for average), and Keras's 1-based Permute.
"""
import keras
import numpy as np
import pytest
from keras import layers, regularizers

from comparisons import portcheck
from l2compare.porter import keras_to_torch

DTYPES = ["float32", "float64"]


def _l2(lam=1e-2):
    return regularizers.L2(lam)


def resnet1d(dtype):
    """A 1-D residual stack: causal dilated conv, grouped 'same' conv, a skip, strided even-kernel
    'same' conv, 'same' pooling on odd lengths, pad/crop/upsample, depthwise and separable 1-D, a
    transposed conv whose 'same' output is cropped at the end."""
    d = dict(dtype=dtype)
    inp = keras.Input((23, 4), dtype=dtype)
    h = layers.Conv1D(8, 3, padding="causal", dilation_rate=2, activation="relu", kernel_regularizer=_l2(),
                      bias_regularizer=regularizers.L1(3e-3), **d)(inp)
    r = layers.Conv1D(8, 3, padding="same", groups=2, activation="tanh",
                      kernel_regularizer=regularizers.L1L2(l1=1e-3, l2=2e-3), **d)(h)
    h = layers.Add(**d)([h, r])
    h = layers.Conv1D(6, 4, strides=2, padding="same", **d)(h)                 # 23 -> 12, pads (1, 2)
    h = layers.MaxPooling1D(3, strides=2, padding="same", **d)(h)              # 12 -> 6, pads (0, 1)
    h = layers.AveragePooling1D(4, strides=1, padding="same", **d)(h)          # pads (1, 2)
    h = layers.ZeroPadding1D((1, 2), **d)(h)
    h = layers.Cropping1D((2, 0), **d)(h)
    h = layers.UpSampling1D(2, **d)(h)
    h = layers.DepthwiseConv1D(3, depth_multiplier=2, padding="same", activation="relu",
                               depthwise_regularizer=_l2(3e-3), bias_regularizer=_l2(), **d)(h)
    h = layers.SeparableConv1D(5, 3, dilation_rate=2, padding="same", depth_multiplier=2,
                               depthwise_regularizer=_l2(1e-3), pointwise_regularizer=regularizers.L1(1e-3),
                               bias_regularizer=_l2(), **d)(h)
    h = layers.Conv1DTranspose(4, 3, strides=2, padding="same", kernel_regularizer=_l2(), **d)(h)
    h = layers.GlobalAveragePooling1D(**d)(h)
    out = layers.Dense(3, activation="softmax", **d)(h)
    return keras.Model(inp, out, name="resnet1d")


def mobilenet(dtype):
    """A MobileNet-style block without batch norm: strided conv, depthwise (multiplier 2, strided
    and dilated at once, which Keras decomposes), grouped 1x1, separable, 'same' pooling."""
    d = dict(dtype=dtype)
    return keras.Sequential([
        keras.Input((17, 15, 3), dtype=dtype),
        layers.Conv2D(8, 3, strides=2, padding="same", activation="relu6", kernel_regularizer=_l2(), **d),
        layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, activation="relu",
                               depthwise_regularizer=_l2(2e-3), bias_regularizer=_l2(), **d),
        layers.Conv2D(12, 1, groups=4, kernel_regularizer=regularizers.L1(1e-3), **d),
        layers.SeparableConv2D(10, (3, 2), strides=2, padding="same", activation="relu",
                               depthwise_regularizer=_l2(1e-3), pointwise_regularizer=_l2(2e-3),
                               bias_regularizer=regularizers.L1L2(l1=1e-3, l2=1e-3), **d),
        layers.DepthwiseConv2D((2, 3), strides=2, dilation_rate=2, padding="same", use_bias=False, **d),
        layers.ZeroPadding2D(((1, 0), (2, 1)), **d),
        layers.MaxPooling2D(3, strides=2, padding="same", **d),
        layers.AveragePooling2D((2, 3), strides=1, padding="same", **d),
        layers.Conv2D(6, 2, padding="same", dilation_rate=(1, 2), **d),
        layers.GlobalMaxPooling2D(keepdims=True, **d),
        layers.Flatten(**d),
        layers.Dense(4, activation="softmax", **d),
    ], name="mobilenet")


def decoder(dtype):
    """An upsampling decoder: Dense -> Reshape, transposed convs ('same' strided, 'valid' with
    output_padding), nearest upsampling, crop and pad, Permute back to a sequence."""
    d = dict(dtype=dtype)
    return keras.Sequential([
        keras.Input((10,), dtype=dtype),
        layers.Dense(2 * 3 * 6, activation="tanh", **d),
        layers.Reshape((2, 3, -1), **d),
        layers.Conv2DTranspose(8, 3, strides=2, padding="same", activation="relu", kernel_regularizer=_l2(),
                               bias_regularizer=_l2(), **d),                     # 4x6: cropped at the end
        layers.UpSampling2D((2, 1), **d),                                        # 8x6
        layers.Conv2DTranspose(6, (4, 3), strides=(1, 2), padding="valid", output_padding=(0, 1), **d),
        layers.Conv2DTranspose(5, 3, padding="same", use_bias=False, **d),
        layers.Conv2D(4, 3, strides=(2, 1), padding="same", kernel_regularizer=_l2(), **d),
        layers.Cropping2D(((1, 2), (0, 3)), **d),
        layers.ZeroPadding2D(((0, 1), (2, 0)), **d),
        layers.Conv2DTranspose(3, (3, 2), strides=(1, 2), padding="same", output_padding=(0, 1), **d),
        layers.Permute((2, 1, 3), **d),
        layers.Reshape((-1, 6), **d),
        layers.GlobalAveragePooling1D(keepdims=True, **d),
        layers.Flatten(**d),
    ], name="decoder")


def shapes(dtype):
    """Permute, Reshape (with -1), RepeatVector between Dense and Conv1D: every axis Keras's."""
    d = dict(dtype=dtype)
    return keras.Sequential([
        keras.Input((6, 4), dtype=dtype),
        layers.Permute((2, 1), **d),                    # (4, 6)
        layers.Dense(5, activation="tanh", **d),        # (4, 5)
        layers.Reshape((2, -1, 2), **d),                # (2, 5, 2)
        layers.Permute((3, 1, 2), **d),                 # (2, 2, 5)
        layers.Conv2D(3, (1, 2), **d),                  # (2, 1, 3)
        layers.Flatten(**d),
        layers.RepeatVector(4, **d),                    # (4, 6)
        layers.Conv1D(3, 2, padding="causal", kernel_regularizer=_l2(), **d),
        layers.ZeroPadding1D(1, **d),
        layers.Cropping1D((0, 2), **d),
        layers.UpSampling1D(3, **d),                    # (12, 3)
        layers.MaxPooling1D(2, strides=3, **d),         # (4, 3)
        layers.AveragePooling1D(2, **d),                # (2, 3)
        layers.GlobalMaxPooling1D(**d),
        layers.Dense(2, **d),
    ], name="shapes")


MODELS = {"resnet1d": (resnet1d, "sce"), "mobilenet": (mobilenet, "sce"),
          "decoder": (decoder, "mse"), "shapes": (shapes, "mse")}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", MODELS)
def test_model_forward_and_gradients(name, dtype, keras_seed):
    keras_seed(11)
    build, loss = MODELS[name]
    km = build(dtype)
    portcheck.randomize_normal(km, 12)
    x, y = portcheck.model_data(km, loss, 13)
    tm = portcheck.assert_forward(km, x)
    assert km.losses, "the model must carry penalties for the gradient check to cover them"
    portcheck.assert_gradients(km, x, y, loss=loss, tm=tm)


@pytest.mark.parametrize("name", ["resnet1d", "decoder"])
def test_standalone_file(name, keras_seed, tmp_path):
    keras_seed(14)
    km = MODELS[name][0]("float64")
    portcheck.randomize_normal(km, 15)
    x, _ = portcheck.model_data(km, MODELS[name][1], 16)
    source = portcheck.assert_standalone(km, x, tmp_path)
    if name == "resnet1d":
        assert "def avg_pool_same(" in source                      # the helper travels with the file
        assert 'value=float("-inf")' in source                     # uneven 'same' max pooling
        assert "_depthwise = nn.Conv1d(" in source and "_pointwise = nn.Conv1d(" in source
    else:
        assert "nn.ConvTranspose2d(" in source and "output_padding=" in source
        # Keras's Permute((2, 1, 3)) straight from channels first: one permute, not two.
        assert ".permute(0, 3, 2, 1)  # Keras's Permute(2, 1, 3), from channels first" in source


def _ported_source(km):
    return keras_to_torch(km).port.source


def test_the_checks_can_fail(keras_seed):
    """A port with the depthwise channels in torch's other plausible order (multiplier-major)
    gives another function: the forward check would catch the mistake."""
    keras_seed(17)
    km = mobilenet("float64")
    portcheck.randomize_normal(km, 18)
    x, _ = portcheck.model_data(km, "sce", 19)
    tm = keras_to_torch(km)
    dw = km.layers[1]
    kernel = np.asarray(dw.kernel)                                   # (3, 3, in=8, mult=2)
    wrong = np.moveaxis(np.swapaxes(kernel, 2, 3).reshape(3, 3, 16), -1, 0)[:, None]
    import torch
    with torch.no_grad():
        getattr(tm, dw.name).weight.copy_(torch.from_numpy(wrong))
    with pytest.raises(AssertionError, match="forward output"):
        portcheck.assert_forward(km, x, tm=tm)


def test_uneven_same_padding_is_written_out(keras_seed):
    """Where Keras's 'same' is uneven the port pads explicitly, and symmetric padding stays torch's."""
    keras_seed(20)
    km = keras.Sequential([keras.Input((9, 9, 2)),
                           layers.Conv2D(3, 3, padding="same", name="even"),      # (1, 1): torch's padding
                           layers.Conv2D(3, 4, padding="same", name="uneven"),    # (1, 2): F.pad
                           layers.MaxPooling2D(3, strides=1, padding="same", name="mp"),
                           layers.AveragePooling2D(2, strides=1, padding="same", name="ap")])
    source = _ported_source(km)
    assert "self.even = nn.Conv2d(2, 3, (3, 3), padding=(1, 1))" in source
    assert "self.uneven(F.pad(" in source and "(1, 2, 1, 2)" in source
    assert "F.max_pool2d(" in source and "padding=(1, 1))" in source
    assert "avg_pool_same(" in source


@pytest.mark.parametrize("dtype", DTYPES)
def test_layers_in_keras_layout(dtype, keras_seed):
    """Padding, cropping, upsampling and global pooling between Dense layers run in Keras's layout
    (no permute), on the axes Keras names."""
    keras_seed(21)
    d = dict(dtype=dtype)
    km = keras.Sequential([keras.Input((7, 5, 3), dtype=dtype), layers.Dense(4, **d),
                           layers.ZeroPadding2D(((2, 1), (0, 3)), **d), layers.Cropping2D(((1, 0), (2, 2)), **d),
                           layers.Dense(3, **d), layers.GlobalAveragePooling2D(keepdims=True, **d),
                           layers.Dense(2, **d)])
    portcheck.randomize_normal(km, 22)
    x, y = portcheck.model_data(km, "mse", 23)
    tm = portcheck.assert_forward(km, x)
    assert ".permute(" not in tm.port.source
    portcheck.assert_gradients(km, x, y, loss="mse", tm=tm)


@pytest.mark.parametrize("rank,kernel,dilation,padding", [
    (2, (3, 2), (2, 3), "valid"), (2, (3, 2), (2, 3), "same"), (2, 4, 2, "same"),
    (1, 4, 2, "same"), (1, 3, 3, "valid")])
def test_dilated_transposed_convs(rank, kernel, dilation, padding, keras_seed):
    """Keras builds a dilated transposed conv, but TensorFlow's CPU kernel cannot run it
    ("Current CPU implementations do not yet support dilation rates larger than 1"). TensorFlow
    defines it as the gradient of the dilated conv with respect to its input: the port is checked
    against that, which TensorFlow computes on CPU."""
    import tensorflow as tf
    import torch

    keras_seed(27)
    shape = (7, 6, 2) if rank == 2 else (7, 2)
    cls = layers.Conv2DTranspose if rank == 2 else layers.Conv1DTranspose
    layer = cls(3, kernel, dilation_rate=dilation, padding=padding, dtype="float64")
    km = keras.Sequential([keras.Input(shape, dtype="float64"), layer])
    portcheck.randomize_normal(km, 28)
    x, _ = portcheck.model_data(km, "mse", 29)
    with pytest.raises(Exception, match="dilation rates larger than 1"):
        km(x)   # if this starts to pass, compare with Keras directly (portcheck.assert_forward)
    z = tf.zeros((len(x), *km.outputs[0].shape[1:-1], 3), tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(z)
        conv = tf.nn.convolution(z, layer.kernel, 1, padding.upper(), dilations=dilation)
    assert tuple(conv.shape[1:]) == shape
    expected = tape.gradient(conv, z, output_gradients=tf.constant(x)).numpy() + layer.bias.numpy()
    with torch.no_grad():
        got = keras_to_torch(km)(torch.from_numpy(x)).numpy()
    diff = np.abs(expected - got).max()
    assert diff <= 1e-12 * max(1.0, np.abs(expected).max()), diff


@pytest.mark.parametrize("dtype", DTYPES)
def test_sequences_of_unknown_length(dtype, keras_seed):
    """Input((None, C)): the padding of a stride-1 'same' conv or pool, a causal conv and a
    transposed conv's crop do not depend on the length; one port serves every length."""
    keras_seed(30)
    d = dict(dtype=dtype)
    km = keras.Sequential([
        keras.Input((None, 3), dtype=dtype),
        layers.Conv1D(4, 3, padding="causal", activation="relu", kernel_regularizer=_l2(), **d),
        layers.SeparableConv1D(5, 2, padding="same", use_bias=False, **d),      # pads (0, 1)
        layers.Conv1DTranspose(3, 3, strides=2, padding="same", **d),          # crops 1 at the end
        layers.MaxPooling1D(2, **d),
        layers.AveragePooling1D(3, strides=1, padding="same", **d),
        layers.GlobalAveragePooling1D(**d),
        layers.Dense(2, **d),
    ])
    portcheck.randomize_normal(km, 31)
    tm = keras_to_torch(km)
    assert "[..., :-1]" in tm.port.source
    for length in (7, 10):
        x = np.random.default_rng(length).normal(size=(4, length, 3)).astype(dtype)
        portcheck.assert_forward(km, x, tm=tm)
    y = np.random.default_rng(32).normal(size=(4, 2)).astype(dtype)
    portcheck.assert_gradients(km, x, y, loss="mse", tm=tm)
