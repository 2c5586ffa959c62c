"""keras_impl models are exactly the article's: layer configs, regularizer placement, counts."""
import keras
import pytest
from keras import layers, regularizers

import keras_impl
from keras_impl import l2 as keras_l2

PARAMS = {"mlp": 101_770, "cnn": 34_826, "mlp_bias": 101_770}


def article_model(name, lam):
    """The article's code, verbatim apart from the λ variable."""
    reg = regularizers.l2(lam) if lam else None
    if name == "mlp":
        return keras.Sequential([
            keras.Input(shape=(784,)),
            layers.Dense(128, activation="relu", kernel_regularizer=reg),
            layers.Dense(10, activation="softmax"),
        ])
    if name == "mlp_bias":
        return keras.Sequential([
            keras.Input(shape=(784,)),
            layers.Dense(128, activation="relu", kernel_regularizer=reg, bias_regularizer=reg),
            layers.Dense(10, activation="softmax", bias_regularizer=reg),
        ])
    return keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Conv2D(32, (3, 3), activation="relu", kernel_regularizer=reg),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu", kernel_regularizer=reg),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dense(10, activation="softmax"),
    ])


def _config_without_names(layer):
    config = dict(layer.get_config())
    config.pop("name", None)
    return type(layer).__name__, config


@pytest.mark.parametrize("lam", [0.01, 0.0, None])
@pytest.mark.parametrize("name", sorted(PARAMS))
def test_layers_equal_the_article(name, lam):
    ours, theirs = keras_impl.build_model(name, l2=lam), article_model(name, lam)
    assert len(ours.layers) == len(theirs.layers)
    for a, b in zip(ours.layers, theirs.layers):
        assert _config_without_names(a) == _config_without_names(b), f"layer {a.name} differs from the article"
    assert ours.count_params() == PARAMS[name]


@pytest.mark.parametrize("name,expected", [
    ("mlp", {"hidden/kernel": 0.01}),
    ("mlp_bias", {"hidden/kernel": 0.01, "hidden/bias": 0.01, "out/bias": 0.01}),
    ("cnn", {"conv1/kernel": 0.01, "conv2/kernel": 0.01}),
])
def test_regularizer_placement(name, expected):
    assert keras_l2.coefficients(keras_impl.build_model(name, l2=0.01)) == expected
    assert keras_l2.coefficients(keras_impl.build_model(name, l2=None)) == {}


def test_l2_regularizer_is_lambda_sum_of_squares_without_half():
    import numpy as np

    model = keras_impl.build_model("mlp", l2=0.01)
    kernel = model.get_layer("hidden").kernel.numpy().astype("float64")
    np.testing.assert_allclose(float(keras_l2.penalty(model)), 0.01 * np.sum(kernel**2), rtol=1e-5)


def test_unknown_model_names_the_allowed_ones():
    with pytest.raises(ValueError, match="unknown model 'resnet'.*mlp, cnn, mlp_bias"):
        keras_impl.build_model("resnet")
