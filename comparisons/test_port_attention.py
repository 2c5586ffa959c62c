"""The port of MultiHeadAttention, alone and in keras.io's transformer examples built from built-in
layers (token and position embeddings, an encoder block, a causal decoder block with cross-attention).

float64: forward ≤ 1e-12 relative (``portcheck``) and the penalty equal to Keras's within the
rounding of its sums. float32: forward within a bound derived from the model (``_float32_bound``).
Weights, biases included, are random. Masked rows are in every batch, a fully masked one included:
Keras replaces masked scores by a large finite number, so that row is uniform, not NaN.
"""
import keras
import numpy as np
import pytest
import torch
from keras import layers as kl
from keras import ops
from keras import regularizers as R
from torch.nn import functional as F

from comparisons import portcheck
from l2compare.porter import PortError, keras_to_torch

DTYPES = ("float32", "float64")
T, S, VOCAB, E = 5, 6, 11, 8


def _regs():
    return dict(kernel_regularizer=R.L2(1e-3), bias_regularizer=R.L1L2(l1=1e-3, l2=2e-3))


def cross(d):
    """Cross-attention with every free argument: key_dim and value_dim not E/heads, a key of its own
    width, output_shape of two axes, and an attention_mask input (bool, True = attend)."""
    q, v = keras.Input((T, 7), dtype=d), keras.Input((S, 5), dtype=d)
    k, m = keras.Input((S, 3), dtype=d), keras.Input((T, S), dtype="bool")
    a = kl.MultiHeadAttention(3, 5, value_dim=2, output_shape=(2, 3), **_regs(), dtype=d)(q, v, key=k,
                                                                                        attention_mask=m)
    return keras.Model([q, v, k, m], a, name="cross")


def self_no_bias(d):
    """Self-attention without biases, causal, with dropout > 0: Keras's other code path (the query
    scaled before the product, −1e9 fill), run at inference."""
    x = keras.Input((T, E), dtype=d)
    a = kl.MultiHeadAttention(2, 3, use_bias=False, dropout=0.25, **_regs(), dtype=d)(x, x, use_causal_mask=True)
    return keras.Model(x, a, name="self_no_bias")


def _embed(tokens, d, name):
    """keras.io's TokenAndPositionEmbedding as a functional graph: ops.arange would be a constant
    (its Embedding dropping out of the model), so positions are cumsum(ones_like(tokens)) − 1."""
    positions = ops.cumsum(ops.ones_like(tokens), axis=1) - 1
    tok = kl.Embedding(VOCAB, E, embeddings_regularizer=R.L2(1e-4), name=f"{name}_token", dtype=d)(tokens)
    return kl.Add(dtype=d)([tok, kl.Embedding(S, E, name=f"{name}_position", dtype=d)(positions)])


def _encoder_block(x, d, causal=False):
    """keras.io's TransformerBlock: attention, dropout, residual, LayerNorm(1e-6), a ReLU feed-forward."""
    a = kl.MultiHeadAttention(2, E // 2, **_regs(), dtype=d)(x, x, use_causal_mask=causal)
    x = kl.LayerNormalization(epsilon=1e-6, dtype=d)(kl.Add(dtype=d)([x, kl.Dropout(0.1, dtype=d)(a)]))
    f = kl.Dense(16, activation="relu", kernel_regularizer=R.L2(1e-3), dtype=d)(x)
    f = kl.Dropout(0.1, dtype=d)(kl.Dense(E, dtype=d)(f))
    return kl.LayerNormalization(epsilon=1e-6, dtype=d)(kl.Add(dtype=d)([x, f]))


def text_classifier(d):
    """keras.io "Text classification with Transformer", functional."""
    tokens = keras.Input((S,), dtype="int32")
    x = _encoder_block(_embed(tokens, d, "enc"), d)
    x = kl.Dense(8, activation="relu", dtype=d)(kl.GlobalAveragePooling1D(dtype=d)(x))
    return keras.Model(tokens, kl.Dense(2, activation="softmax", dtype=d)(x), name="text_classifier")


def decoder(d):
    """keras.io "English-to-Spanish translation"'s TransformerDecoder: causal self-attention, then
    cross-attention on the encoder's outputs, LayerNorm after each residual (Keras's ε 1e-3)."""
    source, target = keras.Input((S,), dtype="int32"), keras.Input((T,), dtype="int32")
    encoded = _encoder_block(_embed(source, d, "src"), d)
    x = _embed(target, d, "tgt")
    a = kl.MultiHeadAttention(2, E // 2, **_regs(), dtype=d)(x, x, use_causal_mask=True)
    x = kl.LayerNormalization(dtype=d)(kl.Add(dtype=d)([x, a]))
    c = kl.MultiHeadAttention(2, 3, value_dim=5, **_regs(), dtype=d)(x, encoded, key=encoded)
    x = kl.LayerNormalization(dtype=d)(kl.Add(dtype=d)([x, c]))
    f = kl.Dense(E, dtype=d)(kl.Dense(16, activation="relu", dtype=d)(x))
    x = kl.LayerNormalization(dtype=d)(kl.Add(dtype=d)([x, f]))
    return keras.Model([source, target], kl.Dense(VOCAB, activation="softmax", dtype=d)(x), name="decoder")


MODELS = {f.__name__: f for f in (cross, self_no_bias, text_classifier, decoder)}


def _inputs(name, dtype, rng):
    if name == "cross":
        mask = rng.random((4, T, S)) > 0.4
        mask[0, 1] = False   # a fully masked row
        return [rng.normal(size=(4, T, 7)).astype(dtype), rng.normal(size=(4, S, 5)).astype(dtype),
                rng.normal(size=(4, S, 3)).astype(dtype), mask]
    if name == "self_no_bias":
        return rng.normal(size=(4, T, E)).astype(dtype)
    tokens = rng.integers(0, VOCAB, (4, S)).astype("int32")
    return tokens if name == "text_classifier" else [tokens, rng.integers(0, VOCAB, (4, T)).astype("int32")]


def _randomize(km, seed):
    rng = np.random.default_rng(seed)
    for w in km.weights:
        w.assign(rng.normal(0.0, 0.5, w.shape))


def _float32_bound(km) -> float:
    """A first-order bound on float32's relative error: each reduction of n terms is off by up to
    n·u (u = 2⁻²⁴) relative to the sum of its terms' magnitudes, in Keras and in torch; along the
    model the bounds add (the weights here are O(1)). Each attention layer reduces over its
    projections' inputs, key_dim, S (softmax and combine) and heads·value_dim."""
    n = 0
    for layer in km.layers:
        if isinstance(layer, kl.MultiHeadAttention):
            n += int(layer._query_dense.kernel.shape[0]) + layer.key_dim + 2 * S + layer.num_heads * layer.value_dim
        elif isinstance(layer, kl.Dense):
            n += int(layer.kernel.shape[0])
        elif isinstance(layer, (kl.LayerNormalization, kl.GlobalAveragePooling1D)):
            n += 2 * S
    return 2 * n * 2.0 ** -24


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_forward_and_penalty(name, dtype, keras_seed):
    keras_seed(20)
    km = MODELS[name](dtype)
    _randomize(km, 21)
    x = _inputs(name, dtype, np.random.default_rng(22))
    tm = keras_to_torch(km).eval()
    expected = keras.ops.convert_to_numpy(km(x, training=False)).astype(np.float64)
    with torch.no_grad():
        got = tm(*portcheck._as_torch(x))
        got = (torch.softmax(got, -1) if tm.returns_logits else got).numpy().astype(np.float64)
    assert np.isfinite(got).all(), f"{name}: the port's output has NaN (a fully masked row?)"
    tol = 1e-12 if dtype == "float64" else _float32_bound(km)
    diff, scale = np.abs(got - expected).max(), max(1.0, np.abs(expected).max())
    assert diff <= tol * scale, f"{name} output ({dtype}): max |Δ| = {diff:.3g} > {tol:.3g}·{scale:.3g}"
    keras_penalty = float(sum(km.losses))
    port_penalty = float(tm.source_module.l2_penalty(tm).detach())
    # Σλ·Σw² over the terms: each sum of n squares rounds by at most n·u relative, in both.
    n = sum(int(np.prod(w.shape)) for w in km.weights)
    u = 2.0 ** -53 if dtype == "float64" else 2.0 ** -24
    assert abs(port_penalty - keras_penalty) <= 2 * n * u * keras_penalty, \
        f"{name} penalty ({dtype}): Keras {keras_penalty!r}, port {port_penalty!r}"
    # One term per projection's kernel and bias (L1 and L2 of the bias: two), as Keras adds them.
    mha = [layer for layer in km.layers if isinstance(layer, kl.MultiHeadAttention)]
    assert sum(p.keras.startswith(tuple(f"{m.name}/" for m in mha)) for p in tm.port.penalties) == \
        sum(4 + (8 if m.use_bias else 0) for m in mha)


@pytest.mark.parametrize("name", ["text_classifier", "self_no_bias"])
def test_gradients_float64(name, keras_seed):
    keras_seed(23)
    km = MODELS[name]("float64")
    _randomize(km, 24)
    x = _inputs(name, "float64", np.random.default_rng(25))
    if name == "text_classifier":   # dropout at rate 0 in training, in Keras and so in the port
        for layer in km.layers:
            if isinstance(layer, kl.Dropout):
                layer.rate = 0.0
        portcheck.assert_gradients(km, x, np.array([0, 1, 1, 0]))
    else:   # dropout > 0 draws a different mask in training: compare with the rate at 0
        km.layers[-1]._dropout = 0.0
        portcheck.assert_gradients(km, x, np.zeros((4, T, E)), loss="mse")


def test_decoder_standalone_file(tmp_path, keras_seed):
    keras_seed(26)
    km = decoder("float64")
    _randomize(km, 27)
    source = portcheck.assert_standalone(km, _inputs("decoder", "float64", np.random.default_rng(28)), tmp_path)
    assert "torch.einsum('btd,dnh->btnh'" in source and ".tril()" in source


def test_torch_masking_differs_on_a_fully_masked_row():
    """Why the port fills scores instead of using torch's masks: on a fully masked row, a −inf fill
    gives NaN and torch 2.13's scaled_dot_product_attention gives zeros; Keras (and the port) give
    the uniform average of the values."""
    q, kv = torch.randn(1, 1, 2, 3, dtype=torch.float64), torch.randn(1, 1, 4, 3, dtype=torch.float64)
    attend = torch.tensor([[False, False, False, False], [True, False, True, True]])   # row 0: all masked
    scores = (q @ kv.transpose(-1, -2)).masked_fill(~attend, float("-inf"))
    assert torch.isnan(torch.softmax(scores, -1)[0, 0, 0]).all()
    sdpa = F.scaled_dot_product_attention(q, kv, kv, attn_mask=attend)   # (1, 1, 2, 3)
    uniform = kv[0, 0].mean(0)
    assert not torch.allclose(sdpa[0, 0, 0], uniform) and torch.isfinite(sdpa[0, 0, 1]).all()


def test_refusals_name_the_layer():
    x = keras.Input((T, E))
    cases = [(lambda: kl.MultiHeadAttention(2, 3, attention_axes=(1, 2), name="mha")(
                  keras.Input((T, 2, E)), keras.Input((T, 2, E))), "attention_axes|shapes"),
             (lambda: kl.MultiHeadAttention(2, 3, use_gate=True, name="mha")(x, x), "use_gate"),
             (lambda: kl.MultiHeadAttention(2, 3, name="mha")(x, x, value_mask=keras.Input((T,), dtype="bool")),
              "value_mask"),
             (lambda: kl.MultiHeadAttention(2, 3, activity_regularizer=R.L2(1e-3), name="mha")(x, x),
              "activity_regularizer")]
    for build, what in cases:
        out = build()
        inputs = [t for t in out._keras_history[0]._inbound_nodes[0].arguments.keras_tensors]
        with pytest.raises(PortError, match=f"'mha' \\(MultiHeadAttention\\).*({what})"):
            keras_to_torch(keras.Model(list(dict.fromkeys(inputs)), out))
