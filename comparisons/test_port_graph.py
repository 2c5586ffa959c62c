"""Functional graphs with branches and merges, and keras.ops nodes: ported exactly, or refused."""
import keras
import numpy as np
import pytest
from keras import layers, ops, regularizers

from comparisons import portcheck
from l2compare.porter import PortError, keras_to_torch


def _branched(dtype):
    d, r = dict(dtype=dtype), regularizers.l2(1e-3)
    i = keras.Input((10, 10, 3), dtype=dtype)
    a = layers.Conv2D(4, 3, padding="same", kernel_regularizer=r, **d)(i)
    b = layers.Conv2D(4, 1, **d)(i)
    s = layers.Activation("relu", **d)(layers.Add(**d)([a, b]))       # a residual merge
    m = layers.Multiply(**d)([s, b])
    av = layers.Average(**d)([s, m, b])
    c = layers.Concatenate(**d)([layers.Concatenate(**d)([s, a]), av, ops.relu(m) * 0.1 - ops.maximum(m, 0.3)])
    g = layers.GlobalAveragePooling2D(**d)(c)                          # channels first inside the port
    v = ops.mean(c, axis=(1, 2))                                         # the same, in Keras's layout
    mx = layers.Maximum(**d)([layers.Minimum(**d)([g, v]), v / 3.0])
    o = layers.Dense(5, activation="softmax", kernel_regularizer=r, **d)(layers.Subtract(**d)([mx, v * 0.5]))
    return keras.Model(i, o)


def _two_inputs(dtype):
    d = dict(dtype=dtype)
    image, features = keras.Input((6, 6, 2), dtype=dtype, name="image"), keras.Input((4,), dtype=dtype, name="meta")
    h = layers.Flatten(**d)(layers.Conv2D(3, 3, activation="tanh", **d)(image))
    h = layers.Concatenate(**d)([h, layers.Dense(5, kernel_regularizer=regularizers.l1_l2(1e-3, 1e-2), **d)(features)])
    return keras.Model([image, features], layers.Dense(2, **d)(h))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_branches_merges_and_ops_nodes_are_exact(dtype, keras_seed, tmp_path):
    keras_seed(11)
    km = _branched(dtype)
    x = np.random.default_rng(0).random((3, 10, 10, 3)).astype(dtype)
    tm = portcheck.assert_forward(km, x)
    portcheck.assert_gradients(km, x, np.array([1, 2, 3]), tm=tm)
    source = portcheck.assert_standalone(km, x, tmp_path)
    # The generated code reads like a port written by hand: one permute in, merges as operators.
    assert source.count("permute(0, 3, 1, 2)") == 1 and "torch.cat([" in source and " + " in source


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_two_inputs_and_an_l1_l2_regularizer(dtype, keras_seed, tmp_path):
    keras_seed(12)
    km = _two_inputs(dtype)
    rng = np.random.default_rng(1)
    x = [rng.random((4, 6, 6, 2)).astype(dtype), rng.random((4, 4)).astype(dtype)]
    tm = portcheck.assert_forward(km, x)
    portcheck.assert_gradients(km, x, rng.normal(size=(4, 2)).astype(dtype), loss="mse", tm=tm)
    assert "def forward(self, image, meta):" in portcheck.assert_standalone(km, x, tmp_path)
    assert {p.kind for p in tm.port.penalties} == {"l1", "l2"}


def test_an_activity_regularizer_is_divided_by_the_batch_size(keras_seed):
    """Keras >= 3.14 divides an activity regularizer's loss by the batch size (layer.py, 'Normalize by
    batch size'); the port does the same, so the penalty matches at two batch sizes."""
    import torch

    keras_seed(13)
    km = keras.Sequential([keras.Input((5,), dtype="float64"),
                           layers.Dense(4, activity_regularizer=regularizers.l2(0.1), dtype="float64")])
    tm = keras_to_torch(km)
    for n in (2, 7):
        x = np.random.default_rng(n).random((n, 5))
        km(x)
        tm(torch.from_numpy(x))
        keras_value = float(sum(np.asarray(v) for v in km.losses))
        assert abs(tm.source_module.l2_penalty(tm).item() - keras_value) <= 1e-12 * keras_value


@pytest.mark.parametrize("build,message", [
    (lambda i: ops.sum(i), r"'sum'.*every axis"),
    (lambda i: ops.transpose(i, (1, 0)), r"moves the batch axis"),
    (lambda i: ops.mean(i, axis=0), r"over the batch axis"),
    (lambda i: ops.cumprod(i, axis=1), r"\(Cumprod\): this layer type is not ported"),
])
def test_unported_ops_nodes_are_refused(build, message):
    i = keras.Input((4,))
    with pytest.raises(PortError, match=message):
        keras_to_torch(keras.Model(i, build(i)))


def test_a_nested_subclassed_model_is_traced():
    """Nested models are ported (test_port_nested.py); a nested subclassed one is traced into a graph of
    its layers and ops (test_port_traced.py) and keeps its Keras name as the submodule's."""
    class Inner(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = layers.Dense(3, kernel_regularizer=regularizers.l2(0.5), name="dense")

        def call(self, x):
            return ops.tanh(self.dense(x)) * 2.0

    i = keras.Input((4,))
    km = keras.Model(i, layers.Dense(2)(Inner(name="inner")(i)))
    tm = portcheck.assert_forward(km, np.random.default_rng(4).random((3, 4)).astype("float32"))
    assert [p.keras for p in tm.port.penalties] == ["inner/dense/kernel"] and hasattr(tm.inner, "dense")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_frozen_layer_is_not_trained_and_not_regularized(dtype, keras_seed):
    """Keras trains only trainable weights and adds only their regularizers: a frozen Dense or
    Conv2D (fine-tuning a backbone) gets requires_grad=False and no penalty in the port."""
    keras_seed(14)
    d = dict(dtype=dtype)
    km = keras.Sequential([keras.Input((6, 6, 2), dtype=dtype),
                           layers.Conv2D(3, 3, kernel_regularizer=regularizers.l2(0.1), trainable=False, **d),
                           layers.Flatten(**d),
                           layers.Dense(4, kernel_regularizer=regularizers.l2(0.1), **d),
                           layers.Dense(3, activation="softmax", kernel_regularizer=regularizers.l2(0.1),
                                        trainable=False, **d)])
    x = np.random.default_rng(2).random((5, 6, 6, 2)).astype(dtype)
    tm = portcheck.assert_gradients(km, x, np.array([0, 1, 2, 0, 1]))
    assert [p.keras.split("/")[0] for p in tm.port.penalties] == [km.layers[2].name]
    assert sorted(n for n, p in tm.named_parameters() if p.requires_grad) == [f"{km.layers[2].name}.bias",
                                                                               f"{km.layers[2].name}.weight"]


def test_a_masked_softmax_is_refused():
    i, m = keras.Input((5,)), keras.Input((5,), dtype="bool")
    with pytest.raises(PortError, match="'softmax'.*mask"):
        keras_to_torch(keras.Model([i, m], layers.Softmax(name="softmax")(i, mask=m)))


def test_a_masked_node_is_refused_not_crashed():
    """A mask reaching a layer whose mask rule is not carried (Concatenate joins masks along its
    axis) is refused by name; masks are ported where they are used (test_port_masks.py)."""
    i = keras.Input((4, 3))
    h = layers.Masking(name="mask")(i)
    with pytest.raises(PortError, match=r"'cat' \(Concatenate\).*masked input"):
        keras_to_torch(keras.Model(i, layers.Concatenate(name="cat")([h, h])))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_softmax_on_any_conv_is_folded_into_logits(dtype, keras_seed):
    keras_seed(15)
    km = keras.Sequential([keras.Input((5, 5, 2), dtype=dtype),
                           layers.SeparableConv2D(3, 5, activation="softmax", dtype=dtype),
                           layers.Flatten(dtype=dtype)])
    # Not the model's last layer: no fold. As the last layer, the port returns logits.
    assert not keras_to_torch(km).returns_logits
    km2 = keras.Sequential([keras.Input((4,), dtype=dtype), layers.Reshape((1, 4), dtype=dtype),
                            layers.Conv1DTranspose(3, 1, activation="softmax", dtype=dtype)])
    tm = portcheck.assert_forward(km2, np.random.default_rng(3).random((2, 4)).astype(dtype))
    assert tm.returns_logits and "softmax" not in tm.port.source.split("def forward")[1].split("def l2_penalty")[0]
