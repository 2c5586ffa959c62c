"""What Keras's optimizers do with an Embedding's sparse gradient, on the TensorFlow backend.

An Embedding without ``embeddings_regularizer`` gets a ``tf.IndexedSlices`` gradient: one slice gᵢ per
looked-up index, a repeated index repeated. Keras's Adam (``keras/src/optimizers/adam.py``
``update_step``) runs on it unchanged:

* ``ops.subtract(gradient, m)`` densifies the slices (``backend/tensorflow/sparse.py``,
  ``elementwise_binary_union``: an IndexedSlices minus a dense tensor is ``tf.convert_to_tensor``
  of it, the slices of a row summed), so m ← β1·m + (1−β1)·Σᵢ gᵢ, once per step, on every row;
* ``ops.square(gradient)`` squares each slice first (``elementwise_unary`` keeps the slices), and
  the subtraction then sums them, so v ← β2·v + (1−β2)·Σᵢ gᵢ² (dense Adam: (Σᵢ gᵢ)²);
* m and v are dense from there on, so w ← w − α·m/(√v + ε) moves every row.

The rule is not lazy: a row absent from a batch has its m and v decayed and moves by its momentum,
as in dense Adam, and a repeated row decays m once, not once per occurrence. It differs from dense
Adam only in v, and only for a row looked up more than once in a batch. AdamW is the same after its
decoupled decay (w −= w·wd·lr on every row). SGD adds lr·gᵢ per occurrence (``scatter_sub``, or a
densified ``lr·gᵢ`` with momentum): dense SGD up to rounding. With an ``embeddings_regularizer``
the gradient is a dense tensor and Keras's Adam is dense Adam. ``l2compare.porter.verify.runner`` carries this in its
notes; it does not emulate it on the torch side.
"""
import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers, regularizers

from keras_impl.train import precision

ROWS, DIM = 6, 2
# Five batches of lookups: repeated rows, rows absent for a step after being seen (1, 2, 3 at step 2),
# a row never seen before step 3 (5).
BATCHES = [[1, 1, 2, 3], [0, 4, 4, 4], [1, 1, 5, 2], [3, 3, 3, 1], [2, 0, 0, 4]]
LR, B1, B2, EPS, WD = 0.1, 0.9, 0.999, 1e-7, 0.004
TOL = 1e-12


def _f32(value: float) -> float:
    """β1, β2 and weight_decay reach a float64 variable through float32 (``ops.cast`` of a Python float)."""
    return float(np.float32(value))


class NumpyAdam:
    """Keras's Adam/AdamW arithmetic on gradient slices (indices, values), with v summing each slice's
    square (``sparse=True``, Keras's rule) or squaring the summed gradient (dense Adam)."""

    def __init__(self, w, sparse: bool, weight_decay: float | None = None):
        self.w, self.sparse, self.wd = w.copy(), sparse, weight_decay
        self.m, self.v, self.t = np.zeros_like(w), np.zeros_like(w), 0

    def step(self, indices, values):
        self.t += 1
        if self.wd:
            self.w = self.w - self.w * _f32(self.wd) * LR
        summed, squares = np.zeros_like(self.w), np.zeros_like(self.w)
        np.add.at(summed, indices, values)
        np.add.at(squares, indices, values**2)
        alpha = LR * np.sqrt(1 - _f32(B2) ** self.t) / (1 - _f32(B1) ** self.t)
        self.m = self.m + (summed - self.m) * (1 - B1)
        self.v = self.v + ((squares if self.sparse else summed * summed) - self.v) * (1 - B2)
        self.w = self.w - (self.m * alpha) / (np.sqrt(self.v) + EPS)
        return self.w


def _slices(indices, values) -> tf.IndexedSlices:
    return tf.IndexedSlices(tf.constant(values), tf.constant(indices), tf.constant([ROWS, DIM]))


def _optimizer(name: str):
    with precision("float64"):   # its learning-rate variable in float64, as for a float64 model
        return {"adam": lambda: keras.optimizers.Adam(LR), "adamw": lambda: keras.optimizers.AdamW(LR, weight_decay=WD),
                "sgd": lambda: keras.optimizers.SGD(LR), "momentum": lambda: keras.optimizers.SGD(LR, momentum=0.9)}[name]()


def _keras_steps(optimizer, w0, values, dense=False):
    """Keras's optimizer applied to a float64 variable, one gradient per batch; the weights after each."""
    with precision("float64"):
        var = keras.Variable(w0.copy(), dtype="float64")
        out = []
        for indices, vals in zip(BATCHES, values):
            grad = _slices(indices, vals)
            optimizer.apply([tf.convert_to_tensor(grad) if dense else grad], [var])
            out.append(var.numpy().copy())
    return out


@pytest.fixture
def case():
    rng = np.random.default_rng(0)
    return rng.standard_normal((ROWS, DIM)), [rng.standard_normal((len(b), DIM)) for b in BATCHES]


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_keras_adam_squares_each_slice_and_is_otherwise_dense_adam(case, name):
    w0, values = case
    wd = WD if name == "adamw" else None
    optimizer = _optimizer(name)
    keras_w = _keras_steps(optimizer, w0, values)
    rule, dense = NumpyAdam(w0, sparse=True, weight_decay=wd), NumpyAdam(w0, sparse=False, weight_decay=wd)
    for t, (indices, vals) in enumerate(zip(BATCHES, values)):   # measured: equal bit for bit
        assert np.abs(keras_w[t] - rule.step(indices, vals)).max() <= TOL, f"step {t + 1}"
        dense.step(indices, vals)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(optimizer._momentums[0]), rule.m, rtol=0, atol=TOL)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(optimizer._velocities[0]), rule.v, rtol=0, atol=TOL)
    # Dense Adam parts from it at step 1, on row 1 (looked up twice): max |Δw| measured 0.035 after step 1,
    # 0.059, 0.084, 0.112, 0.112 after steps 2 to 5 (lr 0.1; the same for AdamW).
    assert np.abs(keras_w[-1] - dense.w).max() > 0.05
    # Not lazy: rows 1, 2 and 3 are absent at step 2 and move all the same; row 5, never seen (m = v = 0),
    # has no Adam step (AdamW's decay alone).
    assert (np.abs(keras_w[1][1:4] - keras_w[0][1:4]) > 1e-3).all()
    unseen = w0[5]
    for _ in range(2 if wd else 0):
        unseen = unseen - unseen * _f32(WD) * LR
    np.testing.assert_allclose(keras_w[1][5], unseen, rtol=0, atol=TOL)


def test_one_step_on_a_repeated_row_measured(case):
    """Indices [1, 1, 2, 3], lr 0.1, float64: row 1's slices are g₁ = (−2.325, −0.219), g₂ = (−1.246, −0.732).
    Step 1 moves a row by −lr·m̂/√v̂ = −lr·Σg/√(Σg²) in Keras, −lr·Σg/|Σg| = ±lr in dense Adam."""
    w0, values = case
    keras_w = _keras_steps(_optimizer("adam"), w0, values[:1])
    dense = NumpyAdam(w0, sparse=False).step(BATCHES[0], values[0])
    np.testing.assert_allclose(keras_w[0][1] - w0[1], [0.13537398, 0.12444133], atol=1e-8)
    np.testing.assert_allclose(dense[1] - w0[1], [0.09999924, 0.09999900], atol=1e-8)
    # Rows looked up once (2, 3) move as in dense Adam; rows not looked up (0, 4, 5) not at all (m = 0).
    np.testing.assert_allclose(keras_w[0][2:4], dense[2:4], rtol=0, atol=TOL)
    assert np.array_equal(keras_w[0][[0, 4, 5]], w0[[0, 4, 5]])


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_a_dense_gradient_gets_dense_adam(case, name):
    w0, values = case
    wd = WD if name == "adamw" else None
    keras_w = _keras_steps(_optimizer(name), w0, values, dense=True)
    dense = NumpyAdam(w0, sparse=False, weight_decay=wd)
    for t, (indices, vals) in enumerate(zip(BATCHES, values)):
        assert np.abs(keras_w[t] - dense.step(indices, vals)).max() <= TOL, f"step {t + 1}"


@pytest.mark.parametrize("name", ["sgd", "momentum"])
def test_sgd_on_a_sparse_gradient_is_dense_sgd_up_to_rounding(case, name):
    w0, values = case
    sparse = _keras_steps(_optimizer(name), w0, values)
    dense = _keras_steps(_optimizer(name), w0, values, dense=True)
    worst = max(np.abs(a - b).max() for a, b in zip(sparse, dense))
    assert worst <= TOL   # measured 0 (sgd) and 1.1e-16 (momentum: lr·g₁ + lr·g₂ against lr·(g₁ + g₂))


def _embedding_model(regularized: bool):
    keras.utils.set_random_seed(3)
    d = "float64"
    reg = regularizers.l2(0.01) if regularized else None
    inp = keras.Input((4,), dtype="int32")
    x = layers.Flatten(dtype=d)(layers.Embedding(ROWS, DIM, embeddings_regularizer=reg, dtype=d, name="emb")(inp))
    model = keras.Model(inp, layers.Dense(1, dtype=d)(x))
    return model, model.get_layer("emb").embeddings


@pytest.mark.parametrize("regularized", [False, True])
def test_fit_hands_adam_the_sparse_gradient_unless_the_embedding_is_regularized(regularized):
    """Through ``fit`` (train_on_batch): the gradient Keras's trainer takes, and the update it makes."""
    model, emb = _embedding_model(regularized)
    rng = np.random.default_rng(1)
    y = rng.standard_normal((len(BATCHES), 1, 1))
    with precision("float64"):
        model.compile(optimizer=_optimizer("adam"), loss="mse", jit_compile=False)
        rule = NumpyAdam(emb.numpy(), sparse=not regularized)
        dense = NumpyAdam(emb.numpy(), sparse=False)
        for indices, target in zip(BATCHES, y):
            x = np.array([indices], dtype="int32")
            with tf.GradientTape() as tape:   # the loss fit minimizes: data + regularization terms
                loss = keras.losses.MeanSquaredError()(target, model(x, training=True))
                loss = loss + sum(model.losses) if model.losses else loss
            grad = tape.gradient(loss, emb.value)
            if regularized:
                assert not isinstance(grad, tf.IndexedSlices)
                rule.step(np.arange(ROWS), grad.numpy())
            else:
                assert isinstance(grad, tf.IndexedSlices)
                assert grad.indices.numpy().tolist() == indices
                rule.step(grad.indices.numpy(), grad.values.numpy())
            dense.step(np.arange(ROWS), tf.convert_to_tensor(grad).numpy())
            model.train_on_batch(x, target)
            assert np.abs(emb.numpy() - rule.w).max() <= TOL
    gap = np.abs(emb.numpy() - dense.w).max()
    assert gap <= TOL if regularized else gap > 1e-3, gap
