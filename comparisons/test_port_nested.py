"""Models used as layers (backbones, siamese encoders), shared layers, frozen backbones: ported as Keras
runs them, checked against Keras's forward, gradients, penalties and BatchNorm statistics."""
import keras
import numpy as np
import pytest
import torch
from keras import layers, regularizers

from comparisons import portcheck
from l2compare.porter import copy_weights, keras_to_torch

R = regularizers.l2


def _backbone(dtype, name="base"):
    """conv -> BN -> GAP -> a nested Sequential with no Input of its own (ConvNeXt's stem is one)."""
    d = dict(dtype=dtype)
    i = keras.Input((6, 6, 2), dtype=dtype)
    h = layers.Conv2D(3, 3, kernel_regularizer=R(1e-2), name="conv1", **d)(i)
    h = layers.BatchNormalization(name="bn", **d)(h)
    inner = keras.Sequential([layers.Dense(4, kernel_regularizer=R(1e-3), activity_regularizer=R(1e-2), name="dense", **d)],
                             name="inner")
    return keras.Model(i, inner(layers.GlobalAveragePooling2D(**d)(h)), name=name)


def _siamese(dtype, base):
    d = dict(dtype=dtype)
    a, b = keras.Input((6, 6, 2), dtype=dtype), keras.Input((6, 6, 2), dtype=dtype)
    merged = layers.Concatenate(**d)([base(a, training=False), base(b)])
    return keras.Model([a, b], layers.Dense(3, activation="softmax", kernel_regularizer=R(1e-2), name="head", **d)(merged))


def _data(dtype, n=4):
    rng = np.random.default_rng(5)
    return [rng.random((n, 6, 6, 2)).astype(dtype) for _ in range(2)], np.arange(n) % 3


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_siamese_backbone_is_one_submodule_counted_as_keras_counts(dtype, keras_seed, tmp_path):
    keras_seed(30)
    km = _siamese(dtype, _backbone(dtype))
    x, y = _data(dtype)
    tm = portcheck.assert_forward(km, x)
    portcheck.assert_gradients(km, x, y, tm=tm)   # BatchNorm in training mode, twice, activity terms twice
    # The standalone file in float64 only: a fresh Python with torch costs seconds, and the file's text is
    # the same in both dtypes but for the dtype name.
    source = portcheck.assert_standalone(km, x, tmp_path) if dtype == "float64" else tm.port.source
    # Keras's losses: each regularized kernel once (three), the activity term once per call (two).
    assert len(km.losses) == 5 and len(tm.port.penalties) == 3
    assert [p.keras for p in tm.port.penalties] == ["base/conv1/kernel", "base/inner/dense/kernel", "head/kernel"]
    assert isinstance(tm.base.inner.dense, torch.nn.Linear) and tm.base.conv1.weight.shape == (3, 2, 3, 3)
    assert source.count("self.base(") == 2 and "class Base(nn.Module)" in source
    assert "base: called with training=False, which Keras 3 overrides" in source


def test_keras_overrides_training_false_in_a_nested_call_and_so_does_the_port(keras_seed):
    """A fact of Keras 3.15 (functional.operation_fn injects the outer call's training into every node):
    base(x, training=False) inside a model that fit calls with training=True normalizes with batch
    statistics and moves BatchNorm's moving mean. Keras 2 kept it in inference. If a Keras release
    restores that, this test fails and the port (nesting.port_model) must follow."""
    keras_seed(31)
    km = _siamese("float64", _backbone("float64"))
    tm = keras_to_torch(km).train()
    x, _ = _data("float64")
    bn = km.get_layer("base").get_layer("bn")
    before = keras.ops.convert_to_numpy(bn.moving_mean)
    keras_out = keras.ops.convert_to_numpy(km(x, training=True))
    assert np.abs(keras.ops.convert_to_numpy(bn.moving_mean) - before).max() > 1e-6, "Keras kept the nested BN in inference"
    with torch.no_grad():
        got = torch.softmax(tm(*[torch.from_numpy(a) for a in x]), -1).numpy()
    portcheck._close("training-mode output", keras_out, got, "float64")
    portcheck._close("moving mean after one call", keras.ops.convert_to_numpy(bn.moving_mean), tm.base.bn.running_mean.numpy(),
                     "float64")


@pytest.mark.parametrize("reenabled", [False, True])
def test_a_frozen_backbone_is_neither_trained_nor_regularized(reenabled, keras_seed):
    """base.trainable=False freezes every layer in it (Keras's setter recurses); Keras's losses then hold
    no term for its weights, and its BatchNorm uses the moving statistics in training. A layer switched
    back on inside the frozen base is trained and regularized again, by Keras and by the port."""
    keras_seed(32)
    base = _backbone("float64")
    base.trainable = False
    if reenabled:
        base.get_layer("conv1").trainable = True
    km = _siamese("float64", base)
    x, y = _data("float64")
    tm = portcheck.assert_gradients(km, x, y)
    expected = ["base/conv1/kernel", "head/kernel"] if reenabled else ["head/kernel"]
    assert [p.keras for p in tm.port.penalties] == expected
    # Keras: one weight term per trainable regularized kernel, plus the activity term of each call.
    assert len(km.losses) == len(expected) + 2
    trained = sorted(n for n, p in tm.named_parameters() if p.requires_grad)
    assert trained == (["base.conv1.bias", "base.conv1.weight"] if reenabled else []) + ["head.bias", "head.weight"]
    assert tm.base.bn.frozen and "trainable=False, so every layer in it is frozen" in tm.port.source


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_shared_layer_is_one_module_and_one_penalty(dtype, keras_seed):
    keras_seed(33)
    d = dict(dtype=dtype)
    shared = layers.Dense(5, activation="tanh", kernel_regularizer=R(1e-2), activity_regularizer=R(1e-3),
                          name="shared", **d)
    a, b = keras.Input((4,), dtype=dtype), keras.Input((4,), dtype=dtype)
    km = keras.Model([a, b], layers.Dense(2, **d)(layers.Subtract(**d)([shared(a), shared(layers.Dense(4, name="back", **d)(shared(b)))])))
    rng = np.random.default_rng(6)
    x = [rng.random((3, 4)).astype(dtype), rng.random((3, 4)).astype(dtype)]
    tm = portcheck.assert_gradients(km, x, rng.random((3, 2)).astype(dtype), loss="mse")
    portcheck.assert_forward(km, x, tm=tm)
    assert [p.keras for p in tm.port.penalties] == ["shared/kernel"] and len(km.losses) == 1 + 3
    assert sum(1 for n, _ in tm.named_parameters() if n.startswith("shared")) == 2


def test_nesting_three_deep_and_copy_weights_both_ways(keras_seed):
    """Canonical names are paths ("outer/mid/dense/kernel" <-> "outer.mid.dense.weight")."""
    keras_seed(34)
    core = keras.Sequential([keras.Input((4,)), layers.Dense(3, kernel_regularizer=R(0.5), name="dense")],
                            name="core")
    i = keras.Input((4,))
    mid = keras.Model(i, layers.Dense(4, name="proj")(core(i)), name="mid")
    j = keras.Input((4,))
    km = keras.Model(j, layers.Dense(2, name="head")(keras.Sequential([mid], name="outer")(j)))
    tm = keras_to_torch(km)
    assert [p.key for p in tm.port.penalties] == ["outer.mid.core.dense.weight"]
    assert tm.l2_coefficients == {"outer/mid/core/dense/kernel": portcheck.keras.ops.convert_to_numpy(
        keras.ops.cast(0.5, "float64")).item()}
    for p in tm.parameters():
        torch.nn.init.normal_(p)
    copy_weights(tm, km)
    x = np.random.default_rng(7).random((3, 4)).astype("float32")
    portcheck.assert_forward(km, x, tm=tm)
    names = [n for n, _ in tm.named_parameters()]
    assert names[0] == "outer.mid.core.dense.weight"
