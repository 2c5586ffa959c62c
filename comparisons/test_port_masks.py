"""Keras's masks in the port: Embedding(mask_zero=True) and Masking, carried to LSTM, GRU, SimpleRNN,
Bidirectional, GlobalAveragePooling1D and MultiHeadAttention (``l2compare.porter.masks``).

Every batch has padding at the end, gaps in the middle, leading padding and (for the RNNs) a
sequence that is all padding: a masked step keeps the state and repeats the last output (zeros
under Bidirectional's return_sequences), which ``pack_padded_sequence`` cannot express for a gap.
Weights are random (biases included). Forward and gradients (data loss + every penalty) are
compared tensor by tensor with ``portcheck``'s tolerances: 1e-12 relative in float64, 1e-5 in float32.
"""
import keras
import numpy as np
import pytest
from keras import layers as kl
from keras import regularizers as R

from comparisons import portcheck
from l2compare.porter import PortError, keras_to_torch

T, VOCAB, N = 7, 9, 5
DTYPES = ("float32", "float64")
# Rows: padding at the end, gaps in the middle, leading padding, no padding, all padding.
TOKENS = np.array([[3, 4, 5, 1, 0, 0, 0], [1, 0, 2, 0, 7, 0, 3], [0, 0, 6, 2, 8, 1, 4], [5, 6, 7, 8, 1, 2, 3],
                   [0, 0, 0, 0, 0, 0, 0]], "int32")


def _regs():
    return dict(kernel_regularizer=R.L2(1e-3), recurrent_regularizer=R.L1(2e-3), bias_regularizer=R.L2(3e-3))


def _rnn(name, d):
    """The recurrent layer under test; every one of them reads the Embedding's mask."""
    return {"lstm_last": lambda: kl.LSTM(4, **_regs(), dtype=d),
            "lstm_seq_backwards": lambda: kl.LSTM(4, return_sequences=True, go_backwards=True, **_regs(), dtype=d),
            "gru": lambda: kl.GRU(4, return_sequences=True, **_regs(), dtype=d),
            "gru_reset_before": lambda: kl.GRU(3, reset_after=False, go_backwards=True, **_regs(), dtype=d),
            "simple_rnn": lambda: kl.SimpleRNN(3, return_sequences=True, activation="relu", **_regs(), dtype=d),
            "bidirectional_seq": lambda: kl.Bidirectional(kl.LSTM(3, return_sequences=True, **_regs(), dtype=d),
                                                          dtype=d),
            "bidirectional_mixed": lambda: kl.Bidirectional(
                kl.GRU(3, **_regs(), dtype=d), backward_layer=kl.SimpleRNN(3, go_backwards=True, dtype=d),
                merge_mode="sum", dtype=d)}[name]()


def _text_model(name, d):
    """The issue's refused case: an LSTM over padded token sequences, and its relatives."""
    inp = keras.Input((T,), dtype="int32")
    x = kl.Embedding(VOCAB, 5, mask_zero=True, embeddings_regularizer=R.L2(1e-3), dtype=d)(inp)
    x = _rnn(name, d)(x)
    if len(x.shape) == 3:   # a sequence: the next RNN reads the mask passed on (return_sequences)
        x = kl.LSTM(3, dtype=d)(x)
    return keras.Model(inp, kl.Dense(3, activation="softmax", dtype=d)(x), name=name)


def _randomize(km, seed):
    rng = np.random.default_rng(seed)
    for w in km.weights:
        w.assign(rng.normal(0.0, 0.5, w.shape))


RNNS = ["lstm_last", "lstm_seq_backwards", "gru", "gru_reset_before", "simple_rnn", "bidirectional_seq",
        "bidirectional_mixed"]


# Every layer in float64; float32 (the same loop, other rounding) on two of them, to keep the run short.
@pytest.mark.parametrize("name, dtype", [(n, "float64") for n in RNNS] + [("lstm_last", "float32"),
                                                                          ("bidirectional_seq", "float32")])
def test_masked_recurrent_forward_and_gradients(name, dtype, keras_seed):
    keras_seed(3)
    km = _text_model(name, dtype)
    _randomize(km, 4)
    tm = portcheck.assert_forward(km, TOKENS)
    portcheck.assert_gradients(km, TOKENS, np.array([0, 1, 2, 1, 0]), tm=tm)
    assert "masked_rnn" in tm.port.source


@pytest.mark.parametrize("dtype", DTYPES)
def test_masking_layer_with_gaps(dtype, keras_seed):
    """Masking(mask_value): a step whose every feature equals the value is masked (set to 0, the
    state kept); one equal feature among others is not."""
    keras_seed(5)
    x = np.random.default_rng(6).normal(size=(4, T, 3)).astype(dtype)
    x[0, 4:] = -1.0
    x[1, 2] = -1.0
    x[2, :2] = -1.0
    x[3, 3, 0] = -1.0   # one feature only: not masked
    inp = keras.Input((T, 3), dtype=dtype)
    h = kl.Masking(-1.0, dtype=dtype)(inp)
    h = kl.Bidirectional(kl.GRU(3, return_sequences=True, **_regs(), dtype=dtype), merge_mode="ave", dtype=dtype)(h)
    km = keras.Model(inp, kl.LSTM(2, dtype=dtype)(h))
    _randomize(km, 7)
    tm = portcheck.assert_forward(km, x)
    portcheck.assert_gradients(km, x, np.zeros((4, 2), dtype), loss="mse", tm=tm)


@pytest.mark.parametrize("dtype", DTYPES)
def test_masked_global_average(dtype, keras_seed):
    """GlobalAveragePooling1D averages the unmasked steps only, through a Dense (which passes the
    mask on) and an Add of two masked embeddings (which ORs their masks)."""
    keras_seed(8)
    inp = keras.Input((T,), dtype="int32")
    a = kl.Embedding(VOCAB, 4, mask_zero=True, dtype=dtype)(inp)
    b = kl.Embedding(VOCAB, 4, mask_zero=True, dtype=dtype)(inp)
    x = kl.Dense(4, activation="tanh", kernel_regularizer=R.L2(1e-2), dtype=dtype)(kl.Add(dtype=dtype)([a, b]))
    km = keras.Model(inp, kl.Dense(3, activation="softmax", dtype=dtype)(kl.GlobalAveragePooling1D(dtype=dtype)(x)))
    _randomize(km, 9)
    tokens = TOKENS[:4]   # an all-padding row averages nothing: 0/0 = NaN in Keras and in the port
    tm = portcheck.assert_forward(km, tokens)
    portcheck.assert_gradients(km, tokens, np.array([0, 1, 2, 1]), tm=tm)
    unmasked = keras.Model(inp, kl.GlobalAveragePooling1D(dtype=dtype)(kl.Embedding(VOCAB, 4, dtype=dtype)(inp)))
    assert "unmasked steps" not in keras_to_torch(unmasked).port.source   # no mask, the plain mean


def test_a_layer_that_does_not_support_masks_drops_it(keras_seed):
    """Conv1D does not support masking: Keras drops the mask there (with a warning), so the
    GlobalAveragePooling1D after it averages every step. The port does the same."""
    keras_seed(10)
    inp = keras.Input((T,), dtype="int32")
    x = kl.Conv1D(3, 2, padding="same", dtype="float64")(kl.Embedding(VOCAB, 4, mask_zero=True, dtype="float64")(inp))
    km = keras.Model(inp, kl.GlobalAveragePooling1D(dtype="float64")(x))
    _randomize(km, 11)
    tm = portcheck.assert_forward(km, TOKENS)
    assert "the mean of the unmasked steps" not in tm.port.source


@pytest.mark.parametrize("dtype", DTYPES)
def test_attention_with_a_padding_mask(dtype, keras_seed):
    """MultiHeadAttention combines the query's mask (N, T, 1) and the key's (N, 1, S); the all-padding
    row has every score masked, and is uniform (Keras fills, it does not add −inf)."""
    keras_seed(12)
    inp = keras.Input((T,), dtype="int32")
    x = kl.Embedding(VOCAB, 6, mask_zero=True, dtype=dtype)(inp)
    a = kl.MultiHeadAttention(2, 3, value_dim=4, kernel_regularizer=R.L2(1e-3), dtype=dtype)(x, x)
    km = keras.Model(inp, a)
    _randomize(km, 13)
    tm = portcheck.assert_forward(km, TOKENS)
    attend = next(line for line in tm.port.source.splitlines() if "_attend = " in line)
    assert "[:, None, :, None]" in attend and "[:, None, None, :]" in attend, attend   # query & key masks
    assert np.isfinite(tm(*portcheck._as_torch(TOKENS)).detach().numpy()).all()


def test_masks_into_unported_mask_rules_are_refused():
    inp = keras.Input((T,), dtype="int32")
    x = kl.Embedding(VOCAB, 4, mask_zero=True)(inp)
    out = kl.Concatenate(name="the_concat")([x, x])
    with pytest.raises(PortError, match=r"'the_concat' \(Concatenate\).*masked input"):
        keras_to_torch(keras.Model(inp, out))
    rnn = kl.LSTM(2, unroll=True, go_backwards=True, zero_output_for_mask=True, return_sequences=True,
                  name="the_lstm")
    with pytest.raises(PortError, match="'the_lstm'.*unroll"):
        keras_to_torch(keras.Model(inp, rnn(x)))
