"""Property: every model built from Keras's layers either ports exactly (forward pass and penalty) or is
refused with a PortError that names the layer. Never a crash, never a silent mismatch.

Hypothesis draws Sequential and functional models (chains with residual Adds and Concatenates, a nested
block sometimes) from the supported layers and a few unsupported ones, with random configurations,
shapes, dtypes and regularizers. Keras itself rejects some draws (a kernel larger than its input): those
are not examples (``assume``). Bounds: portcheck's, 1e-12 (float64) and 1e-5 (float32) relative to the
largest magnitude compared.
"""
import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings, strategies as st
from keras import layers as L, regularizers as R

from l2compare.porter import PortError, applications, keras_to_torch
from comparisons import portcheck

_REGS = st.sampled_from([None, None, "l2", "l1", "l1l2"])


def _reg(kind, lam):
    return {None: None, "l2": R.l2(lam), "l1": R.l1(lam), "l1l2": R.l1_l2(lam, lam)}[kind]


@st.composite
def _layer(draw, rank: int):
    """A layer for an input of ``rank`` (without the batch axis): (layer, rank of its output)."""
    lam = draw(st.sampled_from([1e-3, 2 ** -7, 0.05]))
    reg = lambda: _reg(draw(_REGS), lam)   # noqa: E731
    act = draw(st.sampled_from(["linear", "relu", "tanh", "sigmoid", "gelu", "softplus", "elu", "hard_silu"]))
    choices = ["dense", "bn", "ln", "dropout", "relu", "act", "rescale", "noise", "identity"]
    if rank == 3:
        choices += ["conv2d", "conv2d", "depthwise", "separable", "pool", "gap", "flatten", "pad", "upsample"]
    if rank == 2:
        choices += ["conv1d", "conv1d", "pool1d", "gap1d", "flatten", "lstm"]
    # 7, not 0 or 19: hypothesis favours the ends of a range.
    kind = "unsupported" if draw(st.integers(0, 19)) == 7 else draw(st.sampled_from(choices))
    k = draw(st.integers(1, 3))
    pad = draw(st.sampled_from(["valid", "same"]))
    bias = draw(st.booleans())
    if kind == "dense":
        return L.Dense(draw(st.integers(1, 5)), activation=act, use_bias=bias, kernel_regularizer=reg(),
                       bias_regularizer=reg()), rank
    if kind == "conv2d":
        return L.Conv2D(draw(st.integers(1, 4)), k, strides=draw(st.integers(1, 2)), padding=pad, activation=act,
                        use_bias=bias, kernel_regularizer=reg()), 3
    if kind == "conv1d":
        return L.Conv1D(draw(st.integers(1, 4)), k, padding=draw(st.sampled_from(["valid", "same", "causal"])),
                        dilation_rate=draw(st.integers(1, 2)), activation=act, kernel_regularizer=reg()), 2
    if kind == "depthwise":
        return L.DepthwiseConv2D(k, padding=pad, depthwise_regularizer=reg(), activation=act), 3
    if kind == "separable":
        return L.SeparableConv2D(draw(st.integers(1, 3)), k, padding=pad, pointwise_regularizer=reg()), 3
    if kind == "pool":
        cls = draw(st.sampled_from([L.MaxPooling2D, L.AveragePooling2D]))
        return cls(draw(st.integers(1, 3)), strides=draw(st.sampled_from([None, 1, 2])), padding=pad), 3
    if kind == "pool1d":
        return draw(st.sampled_from([L.MaxPooling1D, L.AveragePooling1D]))(2, padding=pad), 2
    if kind in ("gap", "gap1d"):
        cls = {"gap": [L.GlobalAveragePooling2D, L.GlobalMaxPooling2D],
               "gap1d": [L.GlobalAveragePooling1D, L.GlobalMaxPooling1D]}[kind]
        return draw(st.sampled_from(cls))(), 1
    if kind == "flatten":
        return L.Flatten(), 1
    if kind == "pad":
        return L.ZeroPadding2D(((draw(st.integers(0, 2)), 1), (1, draw(st.integers(0, 2))))), 3
    if kind == "upsample":
        return L.UpSampling2D(draw(st.integers(1, 2))), 3
    if kind == "lstm":
        return draw(st.sampled_from([L.LSTM, L.GRU, L.SimpleRNN]))(
            draw(st.integers(1, 3)), return_sequences=draw(st.booleans()), kernel_regularizer=reg()), None
    if kind == "bn":
        return L.BatchNormalization(scale=draw(st.booleans()), center=draw(st.booleans()),
                                    gamma_regularizer=reg()), rank
    if kind == "ln":
        return L.LayerNormalization(beta_regularizer=reg()), rank
    if kind == "dropout":
        return L.Dropout(0.0), rank
    if kind == "relu":
        return L.ReLU(max_value=draw(st.sampled_from([None, 6.0, 0.5])),
                      negative_slope=draw(st.sampled_from([0.0, 0.1])),
                      threshold=draw(st.sampled_from([0.0, 0.25]))), rank
    if kind == "act":
        return L.Activation(act), rank
    if kind == "rescale":
        return L.Rescaling(draw(st.sampled_from([0.5, 1 / 255])), offset=draw(st.sampled_from([0.0, -1.0]))), rank
    if kind == "noise":
        return L.GaussianNoise(0.1), rank
    if kind == "identity":
        return L.Identity(), rank
    # Not ported: the property is that the refusal names it.
    return draw(st.sampled_from([L.UnitNormalization(), L.GroupNormalization(1)])), rank


@st.composite
def models(draw):
    dtype = draw(st.sampled_from(["float32", "float64"]))
    rank = draw(st.sampled_from([1, 2, 3]))
    shape = {1: (draw(st.integers(2, 6)),), 2: (draw(st.integers(3, 7)), draw(st.integers(1, 3))),
             3: (draw(st.integers(3, 8)), draw(st.integers(3, 8)), draw(st.integers(1, 3)))}[rank]
    with applications.floatx(dtype):
        i = keras.Input(shape)
        x, layers_used = i, []
        for _ in range(draw(st.integers(1, 5))):
            layer, new_rank = draw(_layer(len(x.shape) - 1))
            try:
                y = layer(x)
            except (ValueError, TypeError):
                assume(False)
            assume(all(d is None or d > 0 for d in y.shape[1:]))   # Keras lets a pooling shrink an axis to 0
            layers_used.append(layer)
            if draw(st.booleans()) and tuple(y.shape) == tuple(x.shape):   # a residual merge
                y = draw(st.sampled_from([L.Add(), L.Multiply(), L.Concatenate()]))([x, y])
            x = y
        if draw(st.booleans()) and len(x.shape) > 2:
            x = L.Flatten()(x)
        model = keras.Model(i, x)
        if draw(st.booleans()):   # the same graph as a nested block
            j = keras.Input(shape)
            model = keras.Model(j, L.Activation("linear")(model(j)))
    return model, dtype, layers_used


def _ports_exactly_or_names_the_layer(drawn):
    model, dtype, layers_used = drawn
    try:
        tm = keras_to_torch(model)
    except PortError as e:
        event("refused")
        assert any(repr(layer.name) in str(e) for layer in layers_used) or "nested" in str(e), str(e)[:300]
        return
    event(f"ported, {dtype}")
    x = np.random.default_rng(0).random((3, *model.input_shape[1:])).astype(dtype)
    try:
        portcheck.assert_forward(model, x, tm=tm)
    except AssertionError as e:   # name the drawn layers: the model's own names are generated
        raise AssertionError(f"{e} ({[type(layer).__name__ for layer in layers_used]}, {dtype})") from None
    keras_penalty = sum(float(keras.ops.convert_to_numpy(v)) for v in model.losses)
    penalty = float(tm.source_module.l2_penalty(tm).detach())
    assert abs(penalty - keras_penalty) <= portcheck.TOL[dtype] * max(1.0, abs(keras_penalty)), \
        f"penalty: port {penalty!r}, Keras {keras_penalty!r} ({[type(layer).__name__ for layer in layers_used]})"


_SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
                 derandomize=True)


@settings(max_examples=60, **_SETTINGS)
@given(models())
def test_random_models_port_exactly_or_are_refused_by_name(drawn):
    _ports_exactly_or_names_the_layer(drawn)


@pytest.mark.slow
@settings(max_examples=1000, **_SETTINGS)
@given(models())
def test_many_random_models_port_exactly_or_are_refused_by_name(drawn):
    """1000 models: about 2 min; the default run draws 60 of the same kind."""
    _ports_exactly_or_names_the_layer(drawn)
