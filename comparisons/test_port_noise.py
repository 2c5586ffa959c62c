"""The porter's dropout, noise and activation layers against Keras.

The dropout/noise layers are the identity at inference; their training draws differ from TensorFlow's,
so only their distribution is checked. ActivityRegularization, LeakyReLU, ELU and PReLU; and every refusal.
"""
import keras
import numpy as np
import pytest
import torch
from keras import layers as L
from keras import regularizers as R

from comparisons import portcheck
from comparisons.portcheck import all_checks, random_inputs, random_labels, randomize_weights
from l2compare.porter import PortError, keras_to_torch

DTYPES = ["float32", "float64"]


# ---------------------------------------------------------------- dropout and noise


def _noisy(dtype):
    d = dict(dtype=dtype)
    return keras.Sequential([
        keras.Input((6, 6, 4), dtype=dtype),
        L.Conv2D(8, 3, **d),
        L.SpatialDropout2D(0.5, **d),
        L.GaussianNoise(0.3, **d),
        L.GaussianDropout(0.4, **d),
        L.AlphaDropout(0.2, **d),
        L.Flatten(**d),
        L.Dense(5, **d),
    ])


@pytest.mark.parametrize("dtype", DTYPES)
def test_noise_layers_are_the_identity_at_inference(dtype, keras_seed, tmp_path):
    keras_seed(10)
    km = _noisy(dtype)
    randomize_weights(km)
    x = random_inputs((6, 6, 4), dtype)
    portcheck.assert_forward(km, x)
    source = portcheck.assert_standalone(km, x, tmp_path)
    assert "nn.Dropout2d(0.5)" in source and "nn.AlphaDropout(0.2)" in source
    seq = keras.Sequential([keras.Input((5, 3), dtype=dtype), L.SpatialDropout1D(0.3, dtype=dtype),
                            L.Dense(2, dtype=dtype)])
    portcheck.assert_forward(seq, random_inputs((5, 3), dtype))
    vol = keras.Sequential([keras.Input((3, 3, 3, 2), dtype=dtype), L.SpatialDropout3D(0.3, dtype=dtype)])
    portcheck.assert_forward(vol, random_inputs((3, 3, 3, 2), dtype))


def _train_output(layer, x):
    km = keras.Sequential([keras.Input(x.shape[1:], dtype="float64"), layer])
    tm = keras_to_torch(km).train()
    torch.manual_seed(0)
    with torch.no_grad():
        return tm(torch.from_numpy(x)).numpy()


def test_noise_layers_in_training_have_keras_distribution():
    """In training the draws are torch's, so only the distribution can match Keras's (whose
    formulas these are): tolerances are several standard errors of 10⁵–10⁶ draws."""
    x = np.full((40, 50, 50, 10), 2.0)
    out = _train_output(L.SpatialDropout2D(0.25), x)
    per_channel = out.reshape(40, 2500, 10)
    kept = per_channel[:, 0, :] != 0
    # A channel is kept whole or dropped whole, and kept values are scaled by 1/(1−rate).
    assert np.all((per_channel == 0).all(axis=1) | (per_channel == 2.0 / 0.75).all(axis=1))
    assert abs(kept.mean() - 0.75) < 0.05
    out = _train_output(L.SpatialDropout1D(0.5), np.full((50, 30, 8), 1.0))
    assert np.all((out == 0).all(axis=1) | (out == 2.0).all(axis=1))

    x = np.full((200, 1000), 3.0)
    noise = _train_output(L.GaussianNoise(0.2), x) - 3.0
    assert abs(noise.mean()) < 0.003 and abs(noise.std() - 0.2) < 0.003
    factor = _train_output(L.GaussianDropout(0.3), x) / 3.0
    assert abs(factor.mean() - 1.0) < 0.005 and abs(factor.std() - np.sqrt(0.3 / 0.7)) < 0.005
    # AlphaDropout keeps a standard normal input's mean 0 and variance 1 (SELU's fixed point),
    # with dropped units at a·α' + b.
    z = np.random.default_rng(0).normal(size=(200, 1000))
    out = _train_output(L.AlphaDropout(0.2), z)
    alpha_p = -1.6732632423543772848170429916717 * 1.0507009873554804934193349852946
    a = ((1 - 0.2) * (1 + 0.2 * alpha_p ** 2)) ** -0.5
    dropped = np.isclose(out, a * alpha_p + (-a * alpha_p * 0.2), rtol=0, atol=1e-12)
    assert abs(dropped.mean() - 0.2) < 0.005
    assert abs(out.mean()) < 0.01 and abs(out.var() - 1.0) < 0.01
    np.testing.assert_allclose(out[~dropped], a * z[~dropped] - a * alpha_p * 0.2, rtol=1e-12)


def test_noise_refusals():
    with pytest.raises(PortError, match=r"'alpha_shaped' \(AlphaDropout\).*noise_shape"):
        keras_to_torch(keras.Sequential([keras.Input((4,)), L.AlphaDropout(0.1, noise_shape=(1, 4),
                                                                           name="alpha_shaped")]))
    with pytest.raises(PortError, match=r"'sd_first' \(SpatialDropout2D\).*data_format"):
        keras_to_torch(keras.Sequential([keras.Input((2, 4, 4)), L.SpatialDropout2D(0.1, data_format="channels_first",
                                                                                    name="sd_first")]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_activity_regularization(dtype, keras_seed, tmp_path):
    """ActivityRegularization is the identity; its L1 and L2 terms on its input reach the loss."""
    keras_seed(11)
    d = dict(dtype=dtype)
    km = keras.Sequential([keras.Input((6,), dtype=dtype), L.Dense(5, **d),
                           L.ActivityRegularization(l1=0.01, l2=0.03, **d), L.Dense(3, activation="softmax", **d)])
    randomize_weights(km)
    x = random_inputs((6,), dtype)
    source = all_checks(km, x, random_labels(6, 3), tmp_path)
    assert source.count("activity = activity +") == 2


# ---------------------------------------------------------------- activation layers


@pytest.mark.parametrize("dtype", DTYPES)
def test_activation_layers(dtype, keras_seed, tmp_path):
    keras_seed(12)
    d = dict(dtype=dtype)
    km = keras.Sequential([
        keras.Input((7, 7, 2), dtype=dtype),
        L.Conv2D(3, 2, **d),
        L.LeakyReLU(**d),                                        # Keras's default slope 0.3
        L.PReLU(shared_axes=[1, 2], alpha_regularizer=R.l2(0.1), **d),   # one α per channel
        L.Conv2D(4, 2, **d),
        L.PReLU(**d),                                            # one α per element (H, W, C)
        L.ELU(alpha=0.7, **d),
        L.Flatten(**d),
        L.Dense(6, **d),
        L.PReLU(alpha_regularizer=R.l1(0.05), **d),
        L.LeakyReLU(negative_slope=0.05, **d),
        L.ELU(**d),
        L.Dense(3, activation="softmax", **d),
    ])
    randomize_weights(km)
    x = random_inputs((7, 7, 2), dtype)
    source = all_checks(km, x, random_labels(6, 3), tmp_path)
    assert "negative_slope=0.30000001192092896" in source
    assert source.count(".permute(") == 2   # the activations run channels first between the convs


def test_leaky_relu_slope_is_rounded_through_float32():
    """The carried float32 rounding is needed: with the Python slope 0.3 a float64 port misses Keras by
    ~1.2e-8 relative (measured), far beyond 1e-12."""
    x = -np.linspace(1.0, 5.0, 50)[None]
    expected = keras.layers.LeakyReLU(dtype="float64")(x).numpy()
    exact = torch.nn.functional.leaky_relu(torch.from_numpy(x), 0.3).numpy()
    assert np.abs(expected - exact).max() > 1e-9
    rounded = torch.nn.functional.leaky_relu(torch.from_numpy(x), float(np.float32(0.3))).numpy()
    assert np.abs(expected - rounded).max() == 0.0
