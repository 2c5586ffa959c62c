"""Subclassed models and Lambda layers through the Python API (l2compare.porter.tracing): their Python run
on keras.Input records a graph of the same layers and keras.ops, which is ported exactly; Python that
branches on values is refused with the reason."""
import keras
import numpy as np
import pytest
from keras import layers, ops, regularizers

from comparisons import portcheck
from l2compare.porter import PortError, keras_to_torch


class Residual(keras.Model):
    """A typical subclassed block: layers in __init__, keras.ops glue in call()."""

    def __init__(self, dtype="float32", **kwargs):
        super().__init__(dtype=dtype, **kwargs)
        self.conv = layers.Conv2D(3, 3, padding="same", kernel_regularizer=regularizers.l2(1e-2), dtype=dtype,
                                  name="conv")
        self.norm = layers.BatchNormalization(dtype=dtype, name="norm")
        self.head = layers.Dense(4, activation="softmax", kernel_regularizer=regularizers.l2(1e-3), dtype=dtype,
                                 name="head")

    def call(self, x, training=None):
        h = ops.relu(self.norm(self.conv(x), training=training)) + x
        return self.head(ops.mean(h, axis=(1, 2)))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_subclassed_model_ports_exactly(dtype, keras_seed):
    keras_seed(50)
    with_dtype = Residual(dtype=dtype)
    x = np.random.default_rng(5).random((4, 6, 6, 3)).astype(dtype)
    with_dtype(x)   # built by a call on data, as users build them
    tm = portcheck.assert_forward(with_dtype, x)
    portcheck.assert_gradients(with_dtype, x, np.array([0, 1, 2, 3]), tm=tm)
    assert [p.keras for p in tm.port.penalties] == ["conv/kernel", "head/kernel"] and tm.returns_logits


def test_lambda_layers_at_any_depth_are_traced(keras_seed):
    keras_seed(51)
    i = keras.Input((5,))
    h = layers.Lambda(lambda t, k: ops.tanh(t) * k, arguments={"k": 3.0})(layers.Dense(4, kernel_regularizer="l2")(i))
    inner = keras.Sequential([keras.Input((4,)), layers.Lambda(lambda t: ops.exp(-t)),
                          layers.Dense(4, name="dense_in")], name="inner")
    km = keras.Model(i, layers.Dense(2)(inner(h)))
    tm = portcheck.assert_forward(km, np.random.default_rng(6).random((3, 5)).astype("float32"))
    assert "torch.tanh" in tm.port.source and "torch.exp" in tm.port.source and hasattr(tm.inner, "dense_in")


def test_value_dependent_python_is_refused_with_the_reason():
    class Branchy(keras.Model):
        def call(self, x):
            return x if x[0, 0] > 0 else -x   # not ops.sum: other tests match the op name "sum"

    model = Branchy(name="branchy")
    model(np.ones((1, 4), "float32"))
    with pytest.raises(PortError, match=r"Branchy \('branchy'\).*symbolic inputs.*boolean.*ops.where"):
        keras_to_torch(model)


def test_an_uncalled_subclassed_model_is_refused():
    with pytest.raises(PortError, match=r"'residual'.*has not been called on data yet"):
        keras_to_torch(Residual(name="residual"))
