"""The layers keras.applications adds to the porter's list: Rescaling, Normalization (given, adapted,
inverted), ReLU with every argument, Dropout with a noise shape, 'same' max pooling with uneven padding,
BatchNorm without a scale, ConvNeXt's LayerScale and StochasticDepth, InceptionResNetV2's
CustomScaleLayer. Each against Keras: forward, gradients of data loss + penalties, the standalone file."""
import keras
import numpy as np
import pytest
import torch
from keras import layers as L, regularizers as R
from keras.src.applications.convnext import LayerScale, StochasticDepth
from keras.src.applications.inception_resnet_v2 import CustomScaleLayer

from comparisons import portcheck
from l2compare.porter import keras_to_torch


def _model(dtype, depth):
    d = dict(dtype=dtype)
    i = keras.Input((8, 8, 3), dtype=dtype)
    h = L.Rescaling(1.0 / 127.5, offset=-1.0, **d)(i)
    h = L.Rescaling([0.5, 2.0, 1.0 / 3.0], **d)(h)                     # one factor per channel
    h = L.Normalization(mean=[0.1, -0.2, 0.3], variance=[0.5, 2.0, 1e-20], **d)(h)   # √var under ε
    h = L.Conv2D(4, 3, padding="same", kernel_regularizer=R.l2(1e-2), **d)(h)
    h = L.MaxPooling2D(3, strides=2, padding="same", **d)(h)           # 8 -> 4: padded unevenly, with −∞
    h = L.BatchNormalization(scale=False, **d)(h)
    a = L.ReLU(max_value=0.75, negative_slope=0.1, threshold=0.2, **d)(h)
    b = L.ReLU(6.0, **d)(h)
    c = L.ReLU(negative_slope=0.3, **d)(h)
    h = CustomScaleLayer(0.17, **d)([a, L.Add(**d)([b, c])])
    h = LayerScale(0.5, 4, **d)(h)
    if depth is not None:
        h = StochasticDepth(depth, **d)(h)
    h = L.Dropout(0.0, noise_shape=(None, 1, 1, 4), **d)(h)
    h = L.Normalization(mean=0.2, variance=3.0, invert=True, **d)(L.GlobalAveragePooling2D(**d)(h))
    return keras.Model(i, L.Dense(3, activation="softmax", kernel_regularizer=R.l2(1e-3), **d)(h))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_application_layers_are_exact(dtype, keras_seed, tmp_path):
    x = (np.random.default_rng(2).random((4, 8, 8, 3)) * 255).astype(dtype)
    for depth in (0.25, 0.0 if dtype == "float32" else None):
        keras_seed(40)
        km = _model(dtype, depth)
        for layer in km.layers:   # LayerScale's γ and BN's β away from their initial constants
            for w in layer.trainable_weights:
                if len(w.shape) == 1:
                    w.assign(np.random.default_rng(1).uniform(0.5, 1.5, w.shape).astype(dtype))
        tm = portcheck.assert_forward(km, x)
    # Training mode: StochasticDepth draws at random, so it runs at rate 0 here; in float64 Keras's own
    # StochasticDepth fails in training (it draws float32 noise: a Keras bug), so it is left out.
    portcheck.assert_gradients(km, x, np.array([0, 1, 2, 0]))
    if dtype == "float64":   # the file once: a fresh Python with torch costs seconds
        portcheck.assert_standalone(km, x, tmp_path)
    assert "KerasNormalization" in tm.port.source and "float(\"-inf\")" in tm.port.source


def test_an_adapted_normalization_reads_its_statistics():
    data = np.random.default_rng(3).normal(2.0, 3.0, (50, 4)).astype("float64")
    norm = L.Normalization(dtype="float64")
    norm.adapt(data)
    km = keras.Sequential([keras.Input((4,), dtype="float64"), norm])
    tm = portcheck.assert_forward(km, data[:5])
    assert np.allclose(tm.state_dict()[f"{norm.name}.mean"].numpy().ravel(), data.mean(0))


def test_dropout_with_a_noise_shape_drops_whole_samples():
    """EfficientNet's drop connect: noise_shape (None, 1, 1, 1), one draw per sample, in training only;
    the kept samples scaled by 1/(1 − rate), as Keras does."""
    km = keras.Sequential([keras.Input((3, 3, 2)), L.Conv2D(2, 1), L.Dropout(0.5, noise_shape=(None, 1, 1, 1))])
    tm = keras_to_torch(km).train()
    x = torch.ones(200, 3, 3, 2)
    with torch.no_grad():
        base = keras_to_torch(km).eval()(x)
        out = tm(x)
    kept = (out != 0).flatten(1)
    assert bool((kept.all(1) | ~kept.any(1)).all()), "a sample was dropped in part"
    torch.testing.assert_close(out[kept.all(1)], 2.0 * base[kept.all(1)], rtol=1e-6, atol=1e-6)
    assert 40 < int(kept.all(1).sum()) < 160   # Binomial(200, 0.5): 8 standard deviations either side
