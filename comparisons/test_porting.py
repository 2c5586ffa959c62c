"""Keras -> torch porting: forward parity, flatten order, round trips, clear refusals."""
import keras
import numpy as np
import pytest
import torch
from keras import layers, regularizers

import keras_impl
from l2compare.core.names import MODELS
import torch_impl
from l2compare.porter import convert as porting
from torch_impl import l2 as torch_impl_l2

TOL = {"float32": 1e-5, "float64": 1e-12}


def _torch_input(x: np.ndarray, nchw: bool = False) -> torch.Tensor:
    # The port takes Keras's NHWC arrays; the hand-written mirror's convolutions take NCHW.
    return torch.from_numpy(x.transpose(0, 3, 1, 2).copy() if nchw and x.ndim == 4 else x)


def _torch_probs(model, x, nchw: bool = False):
    with torch.no_grad():
        out = model(_torch_input(x, nchw))
    return torch.softmax(out, -1).numpy() if getattr(model, "returns_logits", True) else out.numpy()


def assert_forward_parity(keras_model, torch_model, x, dtype, nchw: bool = False):
    expected = keras_model(x, training=False).numpy()
    got = _torch_probs(torch_model.eval(), x, nchw)
    diff = np.abs(expected - got).max()
    assert diff <= TOL[dtype], f"forward output differs: max |Δ| = {diff:.3g} > {TOL[dtype]:g} ({dtype})"


def _input(shape, dtype, n=7, seed=0):
    return np.random.default_rng(seed).random((n, *shape)).astype(dtype)


def _extra(name, dtype):
    """Converted architectures beyond the article's: padding, strides, channels, activations."""
    reg = regularizers.l2(0.003)
    d = dict(dtype=dtype)
    if name == "same_stride2":
        return keras.Sequential([
            keras.Input((28, 28, 1), dtype=dtype),
            layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", kernel_regularizer=reg, **d),
            layers.Conv2D(16, (4, 2), padding="same", bias_regularizer=reg, **d),  # even kernel: uneven pad
            layers.ReLU(**d),
            layers.MaxPooling2D(2, **d),
            layers.Flatten(**d),
            layers.Dropout(0.5, **d),
            layers.Dense(10, **d),
            layers.Softmax(**d),
        ])
    if name == "multichannel_flatten":
        return keras.Sequential([
            keras.Input((11, 9, 3), dtype=dtype),
            layers.Conv2D(5, (3, 2), strides=(2, 1), activation="tanh", **d),
            layers.MaxPooling2D((2, 3), strides=(1, 2), **d),
            layers.Flatten(**d),
            layers.Dense(12, activation="sigmoid", kernel_regularizer=regularizers.L1L2(l1=0.0, l2=0.02), **d),
            layers.Activation("relu", **d),
            layers.Dense(4, activation="softmax", **d),
        ])
    if name == "pad_avgpool_gap":
        return keras.Sequential([
            keras.Input((12, 12, 3), dtype=dtype),
            layers.ZeroPadding2D(((1, 2), (0, 1)), **d),  # uneven: any top/left mix-up shows
            layers.Conv2D(4, 3, activation="relu", kernel_regularizer=reg, **d),
            layers.AveragePooling2D(2, **d),
            layers.Conv2D(6, 2, **d),
            layers.GlobalAveragePooling2D(**d),
            layers.Dense(3, activation="softmax", **d),
        ])
    if name == "avgpool_strided_gmp":
        return keras.Sequential([
            keras.Input((10, 10, 2), dtype=dtype),
            layers.Conv2D(5, 3, activation="tanh", **d),
            layers.AveragePooling2D((3, 2), strides=(1, 2), **d),
            layers.GlobalMaxPooling2D(keepdims=True, **d),
            layers.Flatten(**d),
            layers.Dense(4, activation="softmax", bias_regularizer=reg, **d),
        ])
    # A functional chain, not a Sequential.
    inp = keras.Input((20,), dtype=dtype)
    h = layers.Dense(16, activation="relu", kernel_regularizer=reg, **d)(inp)
    out = layers.Dense(3, activation="softmax", **d)(h)
    return keras.Model(inp, out)


EXTRA = ("same_stride2", "multichannel_flatten", "functional_mlp", "pad_avgpool_gap", "avgpool_strided_gmp")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", MODELS)
def test_article_models_forward_parity(name, dtype, keras_seed):
    keras_seed(1)
    km = keras_impl.build_model(name, l2=0.01, dtype=dtype)
    x = _input((784,) if name != "cnn" else (28, 28, 1), dtype)
    converted = porting.keras_to_torch(km)
    assert_forward_parity(km, converted, x, dtype)
    # The hand-written mirror, with the weights copied in, computes the same function.
    mirror = torch_impl.build_model(name, l2=0.01, dtype=dtype)
    porting.copy_weights(km, mirror)
    assert_forward_parity(km, mirror, x, dtype, nchw=True)
    # The porter carries λ as Keras applies it (through float32: see the float64 test below); the
    # hand mirror takes the λ it is given.
    assert converted.l2_coefficients == {n: float(np.float32(lam)) for n, lam in mirror.l2_coefficients.items()}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", EXTRA)
def test_other_architectures_forward_parity(name, dtype, keras_seed):
    keras_seed(2)
    km = _extra(name, dtype)
    # Non-zero biases, so that a bias in the wrong place would show.
    for var in km.weights:
        if var.name == "bias":
            var.assign(np.random.default_rng(3).normal(size=var.shape).astype(dtype))
    x = _input(tuple(km.inputs[0].shape[1:]), dtype)
    assert_forward_parity(km, porting.keras_to_torch(km), x, dtype)


def test_l2_coefficients_carried_over():
    km = _extra("same_stride2", "float32")
    assert porting.keras_to_torch(km).l2_coefficients == {
        f"{km.layers[0].name}/kernel": pytest.approx(0.003),
        f"{km.layers[1].name}/bias": pytest.approx(0.003),
    }
    km = _extra("multichannel_flatten", "float32")
    assert porting.keras_to_torch(km).l2_coefficients == {f"{km.layers[3].name}/kernel": pytest.approx(0.02)}


def test_missing_flatten_permutation_breaks_parity(keras_seed):
    """The guard can fail: without the generated permute back to (H, W, C), torch's own (C, H, W)
    flatten order gives a different function."""
    keras_seed(4)
    km = _extra("multichannel_flatten", "float64")
    tm = porting.keras_to_torch(km)
    back = [line for line in tm.port.source.splitlines() if "back to Keras's channels last" in line]
    assert len(back) == 1, back
    naive = porting.load_source(tm.port.source.replace(back[0] + "\n", ""))
    naive_model = getattr(naive, tm.port.class_name)().double()
    naive_model.load_state_dict(tm.state_dict())
    x = _input((11, 9, 3), "float64")
    assert_forward_parity(km, tm, x, "float64")
    diff = np.abs(km(x).numpy() - _torch_probs(naive_model, x)).max()
    # Measured ≈ 0.1–0.3; anything above 1e-3 is far outside float64 noise (1e-12).
    assert diff > 1e-3, f"naive flatten unexpectedly matched (max |Δ| = {diff:.3g})"


@pytest.mark.parametrize("name", MODELS + EXTRA)
def test_round_trip_keras_torch_keras_is_exact(name, keras_seed):
    keras_seed(5)
    km = keras_impl.build_model(name) if name in MODELS else _extra(name, "float32")
    before = porting.export_weights(km)
    tm = porting.keras_to_torch(km)
    for p in tm.parameters():  # prove the copy back really moves data
        torch.nn.init.zeros_(p)
    porting.copy_weights(km, tm)
    fresh = keras.models.clone_model(km)
    porting.copy_weights(tm, fresh)
    after = porting.export_weights(fresh)
    assert list(after) == list(before)
    for key in before:
        assert np.array_equal(before[key], after[key]), f"{key} changed in the round trip"


def test_copy_weights_names_missing_and_mismatched_tensors():
    km = keras_impl.build_model("mlp")
    with pytest.raises(ValueError, match="missing.*conv1/kernel"):
        porting.copy_weights(km, torch_impl.build_model("cnn"))
    bad = porting.export_weights(km)
    bad["hidden/kernel"] = bad["hidden/kernel"][:10]
    with pytest.raises(ValueError, match="shape mismatch for hidden/kernel"):
        porting.import_weights(torch_impl.build_model("mlp"), bad)
    with pytest.raises(ValueError, match="shape mismatch for hidden/kernel"):
        porting.import_weights(keras_impl.build_model("mlp"), bad)


def _one_layer(layer, shape=(8, 8, 2)):
    return keras.Sequential([keras.Input(shape), layer])


class Scaled(layers.Dense):
    """A custom layer: a Dense subclass whose call() the porter cannot see into."""

    def call(self, x):
        return 2.0 * super().call(x)


class Custom(keras.regularizers.Regularizer):
    def __call__(self, x):
        return keras.ops.sum(keras.ops.abs(x) ** 3)


@pytest.mark.parametrize("model,message", [
    (lambda: _one_layer(Scaled(3, name="s"), (4,)), r"'s' \(Scaled\): this layer type is not ported"),
    (lambda: _one_layer(layers.Dense(3, kernel_regularizer=Custom(), name="d"), (4,)),
     r"'d'.*kernel_regularizer Custom \(only L1, L2 and L1L2"),
    (lambda: _one_layer(layers.Conv2D(3, 3, data_format="channels_first", name="c"), (2, 8, 8)), r"'c'.*channels_first"),
    (lambda: _one_layer(layers.Dense(3, activation="sparsemax", name="d"), (4,)), r"'d'.*activation 'sparsemax'"),
    (lambda: _one_layer(layers.Dense(3, kernel_constraint="max_norm", name="d"), (4,)), r"'d'.*kernel_constraint"),
])
def test_unsupported_is_refused_with_a_clear_error(model, message):
    km = model()
    with pytest.raises(porting.PortError, match=message) as info:
        porting.keras_to_torch(km)
    assert "Supported layers:" in str(info.value)


def test_a_subclassed_model_is_traced_not_crashed():
    """Found porting real-world models: a subclassed keras.Model used to end in AttributeError. Its call()
    is now run on keras.Input and ported as the graph it records (comparisons/test_port_traced.py)."""
    import keras

    class TwoDense(keras.Model):
        def __init__(self):
            super().__init__()
            self.hidden = keras.layers.Dense(8, activation="relu")
            self.out = keras.layers.Dense(3)

        def call(self, x):
            return self.out(self.hidden(x))

    model = TwoDense()
    model(np.zeros((1, 4), "float32"))  # built, with weights
    x = np.random.default_rng(0).random((2, 4)).astype("float32")
    with torch.no_grad():
        got = porting.keras_to_torch(model)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, keras.ops.convert_to_numpy(model(x)), rtol=1e-5, atol=1e-6)


def test_an_unbuilt_model_is_refused():
    import keras

    with pytest.raises(porting.PortError, match="no input shape yet"):
        porting.keras_to_torch(keras.Sequential([keras.layers.Dense(3)]))


@pytest.mark.parametrize("lam", [1e-4, 1e-3, 0.01])
def test_float64_port_carries_the_lambda_keras_uses(lam, keras_seed):
    """TensorFlow casts λ through float32 (ops.cast of a Python float), also in a float64 model: the
    exact Python λ would differ from Keras's penalty by ~5e-8 relative (measured: 1e-3 -> 2.5e-8,
    1e-4 -> 4.7e-8). The port carries the λ Keras applies; its penalty matches to float64 rounding."""
    import keras

    keras_seed(4)
    km = keras.Sequential([keras.Input((6,), dtype="float64"),
                           keras.layers.Dense(5, kernel_regularizer=keras.regularizers.l2(lam),
                                              bias_regularizer=keras.regularizers.L1L2(l2=lam), dtype="float64")])
    for var in km.weights:
        var.assign(np.random.default_rng(5).normal(size=var.shape))
    ported = porting.keras_to_torch(km)
    name = km.layers[0].name
    assert ported.l2_coefficients == {f"{name}/kernel": float(np.float32(lam)), f"{name}/bias": float(np.float32(lam))}
    keras_penalty = float(sum(np.asarray(loss) for loss in km.losses))
    torch_penalty = torch_impl_l2.penalty(ported).item()
    assert abs(torch_penalty - keras_penalty) <= 1e-15 * abs(keras_penalty), (torch_penalty, keras_penalty)
    exact = sum(lam * float((np.asarray(w.numpy()) ** 2).sum()) for w in km.weights)
    assert abs(exact - keras_penalty) > 1e-9 * abs(keras_penalty)  # the rounding the test is about is real


def _builtin_activations():
    from keras.src.activations import ALL_OBJECTS  # the registry Keras resolves activation strings in

    from l2compare.porter.layers.activations import REFUSED

    return sorted(f.__name__ for f in ALL_OBJECTS if f.__name__ not in REFUSED)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", _builtin_activations())
def test_every_builtin_activation_ports_exactly(name, dtype, keras_seed):
    """Dense(activation=name) and Activation(name), on inputs both sides of every kink and cut-off
    (±3 and beyond 20, where torch's own softplus turns linear)."""
    keras_seed(6)
    x = (np.random.default_rng(7).random((9, 6)) * 12 - 6).astype(dtype)
    x[0] = 25.0
    tolerance = TOL[dtype]
    for km in (keras.Sequential([keras.Input((6,), dtype=dtype), layers.Dense(5, activation=name, dtype=dtype)]),
               keras.Sequential([keras.Input((6,), dtype=dtype), layers.Activation(name, dtype=dtype)])):
        expected = km(x, training=False).numpy()
        got = _torch_probs(porting.keras_to_torch(km).eval(), x)  # a final softmax is folded into logits
        scale = max(1.0, float(np.abs(expected).max()))
        diff = float(np.abs(expected - got).max()) / scale
        assert diff <= tolerance, f"{name}: max |Δ| = {diff:.3g} of max(1, |y|) > {tolerance:g} ({dtype})"


def test_builtin_activations_are_all_known():
    """Every name Keras registers is either ported or refused on purpose: a new Keras activation
    shows up here instead of as a vague error."""
    from keras.src.activations import ALL_OBJECTS

    from l2compare.porter.layers.activations import ACTIVATIONS, REFUSED

    assert {f.__name__ for f in ALL_OBJECTS} == set(ACTIVATIONS) | set(REFUSED)
