"""The port of LSTM, GRU, SimpleRNN and Bidirectional: forward, gradients with every penalty,
the standalone file, the single-bias question, and what is refused.

Small text-classifier-like models (T = 6 steps, F = 5 features, 3 or 4 units), in float32 and
float64. Every weight is drawn at random (biases included: Keras's are zeros, or ones for the
LSTM's forget gate, at initialization, which would hide a misplaced bias).
"""
import keras
import numpy as np
import pytest
import torch
from keras import layers as kl
from keras import regularizers as R

from comparisons import portcheck
from l2compare.porter import PortError, keras_to_torch
from l2compare.porter.runtime.recurrent import sequence_dropout

T, FEATURES, N = 6, 5, 8
DTYPES = ("float32", "float64")


def _regs():
    """One of each regularizer kind, on every weight a recurrent layer has."""
    return dict(kernel_regularizer=R.L2(1e-3), recurrent_regularizer=R.L1(2e-3),
                bias_regularizer=R.L1L2(l1=1e-3, l2=3e-3))


def _model(name, dtype):
    d = dict(dtype=dtype)
    inp = keras.Input((T, FEATURES), dtype=dtype)
    if name == "stacked_lstm":
        x = kl.LSTM(4, return_sequences=True, **_regs(), **d)(inp)
        x = kl.LSTM(4, **_regs(), **d)(x)
        out = kl.Dense(3, activation="softmax", **d)(x)
    elif name == "lstm_backwards":   # go_backwards, with and without return_sequences
        x = kl.LSTM(4, return_sequences=True, go_backwards=True, **_regs(), **d)(inp)
        x = kl.LSTM(3, go_backwards=True, **d)(x)
        out = kl.Dense(3, activation="softmax", **d)(x)
    elif name == "gru":   # reset_after True (Keras 3's default, nn.GRU) and False (hand-written)
        x = kl.GRU(4, return_sequences=True, **_regs(), **d)(inp)
        x = kl.GRU(4, return_sequences=True, reset_after=False, **_regs(), **d)(x)
        x = kl.GRU(3, reset_after=False, go_backwards=True, **d)(x)
        out = kl.Dense(3, activation="softmax", **d)(x)
    elif name == "bidirectional_gru":
        x = kl.Bidirectional(kl.GRU(4, return_sequences=True, **_regs(), **d), **d)(inp)
        x = kl.Bidirectional(kl.GRU(3, reset_after=False, return_sequences=True, **_regs(), **d), **d)(x)
        x = kl.Bidirectional(kl.GRU(3, **d), merge_mode="sum", **d)(x)
        out = kl.Dense(3, activation="softmax", **d)(x)
    elif name.startswith("bidirectional_lstm_"):
        mode = name.removeprefix("bidirectional_lstm_")
        x = kl.Bidirectional(kl.LSTM(3, return_sequences=True, **_regs(), **d), merge_mode=mode, **d)(inp)
        x = kl.Bidirectional(kl.LSTM(3, **_regs(), **d), merge_mode=mode, **d)(x)
        out = kl.Dense(2, **d)(x)
    elif name == "bidirectional_mixed":   # unlike directions: two modules, not one bidirectional=True
        backward = kl.GRU(3, return_sequences=True, go_backwards=True, **_regs(), **d)
        x = kl.Bidirectional(kl.LSTM(3, return_sequences=True, **_regs(), **d), backward_layer=backward, **d)(inp)
        x = kl.Bidirectional(kl.SimpleRNN(3, activation="relu", **d),
                             backward_layer=kl.SimpleRNN(3, go_backwards=True, **d), merge_mode="mul", **d)(x)
        out = kl.Dense(3, activation="softmax", **d)(x)
    elif name == "simple_rnn":
        x = kl.SimpleRNN(4, activation="relu", return_sequences=True, go_backwards=True, **_regs(), **d)(inp)
        x = kl.Bidirectional(kl.SimpleRNN(4, return_sequences=True, **_regs(), **d), **d)(x)
        x = kl.SimpleRNN(3, use_bias=False, **d)(x)
        out = kl.Dense(3, activation="softmax", **d)(x)
    elif name == "no_bias":
        x = kl.LSTM(4, use_bias=False, return_sequences=True, **_regs(), **d)(inp)
        x = kl.GRU(4, use_bias=False, reset_after=False, return_sequences=True, **_regs(), **d)(x)
        x = kl.Bidirectional(kl.GRU(3, use_bias=False, **d), merge_mode="ave", **d)(x)
        out = kl.Dense(3, activation="softmax", **d)(x)
    elif name == "dropout":   # input dropout: exact at inference, one mask per sequence in training
        x = kl.LSTM(4, dropout=0.3, return_sequences=True, **d)(inp)
        x = kl.Bidirectional(kl.GRU(3, dropout=0.2, reset_after=False, return_sequences=True, **d), **d)(x)
        x = kl.SimpleRNN(3, dropout=0.1, **d)(x)
        out = kl.Dense(3, activation="softmax", **d)(x)
    else:
        raise KeyError(name)
    model = keras.Model(inp, out, name=name)
    rng = np.random.default_rng(7)
    for v in model.weights:
        v.assign((0.5 * rng.standard_normal(v.shape)).astype(dtype))
    return model


def _data(dtype, n_classes=3):
    rng = np.random.default_rng(0)
    return rng.standard_normal((N, T, FEATURES)).astype(dtype), rng.integers(0, n_classes, N)


MODELS = ["stacked_lstm", "lstm_backwards", "gru", "bidirectional_gru", "bidirectional_lstm_concat",
          "bidirectional_lstm_sum", "bidirectional_lstm_ave", "bidirectional_lstm_mul", "bidirectional_mixed",
          "simple_rnn", "no_bias"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", MODELS)
def test_forward_and_gradients(name, dtype, keras_seed):
    keras_seed(0)
    km = _model(name, dtype)
    x, y = _data(dtype)
    tm = portcheck.assert_forward(km, x)
    if km.layers[-1].activation is keras.activations.softmax:
        portcheck.assert_gradients(km, x, y, tm=tm)
    else:
        target = np.random.default_rng(1).standard_normal((N, 2)).astype(dtype)
        portcheck.assert_gradients(km, x, target, loss="mse", tm=tm)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_exact_at_inference(dtype, keras_seed):
    keras_seed(0)
    km = _model("dropout", dtype)
    x, _ = _data(dtype)
    tm = portcheck.assert_forward(km, x)
    tm.train()
    with torch.no_grad():
        a, b = tm(torch.from_numpy(x)), tm(torch.from_numpy(x))
    assert not torch.equal(a, b), "dropout is not active in training mode"


def test_sequence_dropout_one_mask_per_sequence():
    torch.manual_seed(0)
    out = sequence_dropout(torch.ones(64, T, FEATURES, dtype=torch.float64), 0.5, True)
    assert torch.equal(out, out[:, :1].expand_as(out)), "Keras drops the same features at every step"
    assert set(out.unique().tolist()) == {0.0, 2.0}
    assert torch.equal(sequence_dropout(out, 0.5, False), out)


@pytest.mark.parametrize("name", ["stacked_lstm", "bidirectional_gru"])
def test_standalone_file(name, tmp_path, keras_seed):
    keras_seed(0)
    km = _model(name, "float64")
    x, _ = _data("float64")
    source = portcheck.assert_standalone(km, x, tmp_path)
    assert "nn.LSTM(" in source or "nn.GRU(" in source


def _sgd_step(km, tm, x, y, lr):
    """One SGD step in Keras and in torch on the same batch (data loss + penalties)."""
    import tensorflow as tf

    with tf.GradientTape() as tape:
        value = portcheck.keras_loss(km, x, y, "sce")
    grads = tape.gradient(value, km.trainable_variables)
    for v, g in zip(km.trainable_variables, grads):
        v.assign(v - lr * g)
    tm.train()
    optimizer = torch.optim.SGD(tm.parameters(), lr=lr)
    optimizer.zero_grad()
    portcheck.torch_loss(tm, x, y, "sce").backward()
    optimizer.step()


def test_single_bias_trains_as_keras_and_the_naive_split_does_not(keras_seed):
    """Keras's LSTM has one bias; torch adds bias_ih + bias_hh. The port freezes bias_hh at zero.
    The naive split (Keras's bias in bias_ih, zero in bias_hh, both trainable) gives both the
    bias's gradient, so one SGD step moves the sum twice as far: measured here, max
    |Δ bias| from Keras's = 1.35e-3 after one step at lr 0.1 (0.0 for the port, float64)."""
    keras_seed(0)
    lr = 0.1
    x, y = _data("float64")
    results = {}
    for naive in (False, True):
        km = _model("stacked_lstm", "float64")
        tm = keras_to_torch(km)
        lstm = km.layers[1]
        module = getattr(tm, lstm.name)
        assert not module.bias_hh_l0.requires_grad and not module.bias_hh_l0.any()
        if naive:
            module.bias_hh_l0.requires_grad_(True)
        _sgd_step(km, tm, x, y, lr)
        expected = keras.ops.convert_to_numpy(lstm.cell.bias)
        got = (module.bias_ih_l0 + module.bias_hh_l0).detach().numpy()
        results[naive] = float(np.abs(expected - got).max())
    assert results[False] <= 1e-12, results
    assert results[True] > 1e-4, results   # measured 1.35e-3


def _lstm_model(**kwargs):
    batch = kwargs.pop("batch_size", None)
    inp = keras.Input((T, FEATURES), batch_size=batch)
    x = kl.LSTM(4, name="the_lstm", **kwargs)(inp)
    return keras.Model(inp, kl.Dense(3, activation="softmax")(x) if not isinstance(x, (list, tuple)) else x[0])


REFUSED = {
    "stateful": (lambda: _lstm_model(stateful=True, batch_size=2), "stateful"),
    "recurrent_dropout": (lambda: _lstm_model(recurrent_dropout=0.2), "recurrent_dropout"),
    "activation": (lambda: _lstm_model(activation="relu"), "activation 'relu'"),
    "recurrent_activation": (lambda: _lstm_model(recurrent_activation="hard_sigmoid"), "hard_sigmoid"),
    "implementation_1": (lambda: _lstm_model(dropout=0.2, implementation=1), "implementation=1"),
    "constraint": (lambda: _lstm_model(kernel_constraint=keras.constraints.MaxNorm(2)), "kernel_constraint"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refusals_name_the_layer(case):
    build, what = REFUSED[case]
    with pytest.raises(PortError, match=f"'the_lstm'.*{what}"):
        keras_to_torch(build())


def test_return_state_refused():
    inp = keras.Input((T, FEATURES))
    out, h, c = kl.LSTM(4, return_state=True, name="the_lstm")(inp)
    with pytest.raises(PortError, match="'the_lstm'"):
        keras_to_torch(keras.Model(inp, kl.Dense(2)(out)))


def test_simple_rnn_activation_refused():
    inp = keras.Input((T, FEATURES))
    out = kl.SimpleRNN(4, activation="sigmoid", name="the_rnn")(inp)
    with pytest.raises(PortError, match="'the_rnn'.*activation 'sigmoid'"):
        keras_to_torch(keras.Model(inp, out))


def test_bidirectional_refusals_name_the_layer():
    inp = keras.Input((T, FEATURES))
    both = kl.Bidirectional(kl.LSTM(4, return_sequences=True), merge_mode=None, name="the_bi")(inp)
    with pytest.raises(PortError, match="'the_bi'"):   # two outputs
        keras_to_torch(keras.Model(inp, both[0]))
    for layer, what in [(kl.LSTM(4, recurrent_dropout=0.1), "recurrent_dropout"),
                        (kl.LSTM(4, kernel_regularizer=R.OrthogonalRegularizer(0.01)),
                         "kernel_regularizer OrthogonalRegularizer"),
                        (kl.GRU(4, bias_constraint=keras.constraints.NonNeg()), "bias_constraint"),
                        (kl.GRU(4, activity_regularizer=R.L2(0.1)), "activity_regularizer")]:
        out = kl.Bidirectional(layer, name="the_bi")(inp)
        with pytest.raises(PortError, match=f"'the_bi'.*{what}"):
            keras_to_torch(keras.Model(inp, out))
