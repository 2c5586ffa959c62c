"""The porter's normalization and embedding layers against Keras.

BatchNormalization in both modes (and its moving statistics after several training calls),
LayerNormalization, Embedding on integer input, frozen layers; and every refusal. The noise and
activation layers are in test_port_noise.py.
"""
import keras
import numpy as np
import pytest
import torch
from keras import layers as L
from keras import regularizers as R

from comparisons import portcheck
from comparisons.portcheck import all_checks, random_inputs, random_labels, randomize_weights
from l2compare.porter import PortError, keras_to_torch

DTYPES = ["float32", "float64"]


def _conv_bn(dtype, **bn):
    d = dict(dtype=dtype)
    reg = R.l2(0.01)
    return keras.Sequential([
        keras.Input((9, 9, 3), dtype=dtype),
        L.Conv2D(4, 3, use_bias=False, **d),
        L.BatchNormalization(gamma_regularizer=reg, beta_regularizer=R.L1L2(l1=0.002, l2=0.003), name="bn1", **bn, **d),
        L.ReLU(**d),
        L.Conv2D(5, 3, padding="same", **d),
        L.BatchNormalization(momentum=0.9, epsilon=1e-5, name="bn2", **d),
        L.Activation("tanh", **d),
        L.MaxPooling2D(2, **d),
        L.Flatten(**d),
        L.Dense(4, **d),
        L.BatchNormalization(center=False, name="bn3", **d),
        L.Dense(3, activation="softmax", **d),
    ])


# ---------------------------------------------------------------- BatchNormalization


@pytest.mark.parametrize("dtype", DTYPES)
def test_batchnorm_conv_net(dtype, keras_seed, tmp_path):
    keras_seed(3)
    km = _conv_bn(dtype)
    randomize_weights(km)
    source = all_checks(km, random_inputs((9, 9, 3), dtype), random_labels(6, 3), tmp_path)
    # Between two convolutions BN runs channels first: one permute in, one back before Flatten.
    assert source.count(".permute(") == 2, source
    assert "KerasBatchNorm(4)" in source and "KerasBatchNorm(5, eps=1e-05, momentum=0.9)" in source
    assert "KerasBatchNorm(4, center=False)" in source


@pytest.mark.parametrize("dtype", DTYPES)
def test_batchnorm_moving_statistics_follow_keras(dtype, keras_seed):
    """Five training-mode calls on different batches move Keras's moving_mean/moving_variance and
    the port's running_mean/running_var alike (float64: to 1e-12)."""
    keras_seed(4)
    km = _conv_bn(dtype)
    randomize_weights(km)
    tm = keras_to_torch(km).train()
    initial = tm.port.state()
    for step in range(5):
        x = random_inputs((9, 9, 3), dtype, seed=10 + step)
        keras_out = keras.ops.convert_to_numpy(km(x, training=True))
        with torch.no_grad():
            torch_out = torch.softmax(tm(torch.from_numpy(x)), -1).numpy()
        portcheck._close(f"training output, step {step}", keras_out, torch_out, dtype)
    keras_state = tm.port.state()   # Keras's moving statistics now, in the port's keys
    moved = [k for k in keras_state if k.endswith(("running_mean", "running_var"))]
    assert len(moved) == 6
    for key in moved:
        portcheck._close(key, keras_state[key], tm.state_dict()[key].numpy(), dtype)
        # And the statistics did move (the comparison is not between two untouched buffers).
        assert np.abs(keras_state[key] - initial[key]).max() > 1e-3, key


def test_nn_batchnorm2d_would_not_follow_keras(keras_seed):
    """nn.BatchNorm2d(momentum=0.01, eps=1e-3) normalizes as Keras does in training, but moves
    running_var with the unbiased batch variance: each step adds 0.01·var/(n−1) more than Keras
    (n = N·H·W = 6·7·7 = 294 values per channel). After 5 steps on inputs of variance ≈ 4 its
    running_var is 6.8e-4 above Keras's moving_variance (measured; 4.6e-4 relative to the largest),
    ~1e8 times the float64 tolerance, and the gap is exactly that sum; running_mean agrees."""
    keras_seed(5)
    dtype = "float64"
    km = keras.Sequential([keras.Input((7, 7, 4), dtype=dtype), L.BatchNormalization(dtype=dtype)])
    randomize_weights(km)
    layer = km.layers[0]
    bn = torch.nn.BatchNorm2d(4, eps=1e-3, momentum=0.01).to(torch.float64).train()
    with torch.no_grad():
        for p, v in [(bn.weight, layer.gamma), (bn.bias, layer.beta), (bn.running_mean, layer.moving_mean),
                     (bn.running_var, layer.moving_variance)]:
            p.copy_(torch.from_numpy(v.numpy()))
    predicted_gap = np.zeros(4)
    for step in range(5):
        x = random_inputs((7, 7, 4), dtype, seed=20 + step)
        expected = km(x, training=True).numpy()
        with torch.no_grad():
            got = bn(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
        portcheck._close("nn.BatchNorm2d training output", expected, got, dtype)   # same normalization
        n = x.size // 4
        predicted_gap = 0.99 * predicted_gap + 0.01 * x.var(axis=(0, 1, 2)) / (n - 1)
    np.testing.assert_allclose(bn.running_mean.numpy(), layer.moving_mean.numpy(), rtol=0, atol=1e-12)
    gap = bn.running_var.numpy() - layer.moving_variance.numpy()
    assert 5e-4 < gap.max() < 1e-3, gap
    np.testing.assert_allclose(gap, predicted_gap, rtol=1e-9)


@pytest.mark.parametrize("dtype", DTYPES)
def test_batchnorm_dense_and_sequence_axes(dtype, keras_seed, tmp_path):
    """Rank 2 (after Dense), rank 3 in Keras's layout (features last, and axis=1: over steps),
    scale=False, and a non-default momentum."""
    keras_seed(6)
    d = dict(dtype=dtype)
    inp = keras.Input((5, 4), dtype=dtype)
    h = L.Dense(6, **d)(inp)
    h = L.BatchNormalization(scale=False, momentum=0.5, **d)(h)
    h = L.BatchNormalization(axis=1, gamma_regularizer=R.l1(0.01), **d)(h)
    h = L.Flatten(**d)(h)
    h = L.Dense(7, **d)(h)
    h = L.BatchNormalization(center=False, scale=False, **d)(h)
    out = L.Dense(2, **d)(h)
    km = keras.Model(inp, out)
    randomize_weights(km)
    x = random_inputs((5, 4), dtype)
    source = all_checks(km, x, random_inputs((2,), dtype, seed=3), tmp_path, loss="mse")
    assert "KerasBatchNorm(6, dim=2, momentum=0.5, scale=False)" in source      # (N, 5, 6): features last
    assert "KerasBatchNorm(5)" in source                  # axis=1 of (N, 5, 6): dim 1 in either layout


@pytest.mark.parametrize("dtype", DTYPES)
def test_norms_on_conv_maps_over_other_axes(dtype, keras_seed, tmp_path):
    """BN over image rows (axis=1) of a channels-first map is torch dim 2; LayerNorm over a whole
    (H, W, C) map runs in Keras's layout, with γ/β of shape (H, W, C)."""
    keras_seed(13)
    d = dict(dtype=dtype)
    km = keras.Sequential([
        keras.Input((6, 5, 2), dtype=dtype),
        L.Conv2D(3, 2, **d),
        L.BatchNormalization(axis=1, beta_regularizer=R.l2(0.02), **d),
        L.Conv2D(4, 2, **d),
        L.LayerNormalization(axis=(1, 2, 3), gamma_regularizer=R.l2(0.01), **d),
        L.Flatten(**d),
        L.Dense(3, activation="softmax", **d),
    ])
    randomize_weights(km)
    source = all_checks(km, random_inputs((6, 5, 2), dtype), random_labels(6, 3), tmp_path)
    assert "KerasBatchNorm(5, dim=2)" in source and "nn.LayerNorm((4, 3, 4), eps=0.001)" in source


@pytest.mark.parametrize("dtype", DTYPES)
def test_frozen_batchnorm_normalizes_with_moving_statistics(dtype, keras_seed, tmp_path):
    """trainable=False: Keras uses the moving statistics in training too, leaves them, and drops the
    layer's γ/β regularizers from its losses (only trainable weights' regularizers count)."""
    keras_seed(7)
    km = _conv_bn(dtype)
    km.layers[1].trainable = False
    randomize_weights(km)
    x = random_inputs((9, 9, 3), dtype)
    source = all_checks(km, x, random_labels(6, 3), tmp_path)
    assert "frozen=True" in source and "bn1.weight" not in source.split("def l2_penalty")[1]
    tm = keras_to_torch(km).train()
    before = {k: v.clone() for k, v in tm.state_dict().items()}
    tm(torch.from_numpy(x))
    assert torch.equal(before["bn1.running_var"], tm.bn1.running_var)
    assert not torch.equal(before["bn2.running_var"], tm.bn2.running_var)
    assert not tm.bn1.weight.requires_grad


@pytest.mark.parametrize("kwargs, words", [
    (dict(renorm=True), "renorm"),
    (dict(synchronized=True), "synchronized"),
])
def test_batchnorm_refusals(kwargs, words):
    km = keras.Sequential([keras.Input((4, 4, 2)), L.BatchNormalization(name="bn_odd", **kwargs)])
    with pytest.raises(PortError, match=rf"'bn_odd' \(BatchNormalization\).*{words}"):
        keras_to_torch(km)


def test_batchnorm_over_the_batch_axis_is_refused():
    km = keras.Sequential([keras.Input((3,), batch_size=4), L.BatchNormalization(axis=0, name="bn_batch")])
    with pytest.raises(PortError, match=r"'bn_batch' \(BatchNormalization\).*batch axis"):
        keras_to_torch(km)


def test_batchnorm_with_a_mask_is_refused():
    inp, mask = keras.Input((5, 3)), keras.Input((5,), dtype="bool")
    km = keras.Model([inp, mask], L.BatchNormalization(name="bn_masked")(inp, mask=mask))
    with pytest.raises(PortError, match=r"'bn_masked' \(BatchNormalization\).*mask"):
        keras_to_torch(km)


# ---------------------------------------------------------------- LayerNormalization, Embedding


@pytest.mark.parametrize("dtype", DTYPES)
def test_embedding_layernorm_sequence(dtype, keras_seed, tmp_path):
    keras_seed(8)
    d = dict(dtype=dtype)
    inp = keras.Input((7,), dtype="int32")
    h = L.Embedding(11, 6, embeddings_regularizer=R.l2(0.02), **d)(inp)
    h = L.LayerNormalization(gamma_regularizer=R.l2(0.01), beta_regularizer=R.l1(0.01), **d)(h)
    h = L.Dense(5, activation="relu", **d)(h)
    h = L.LayerNormalization(axis=(1, 2), epsilon=1e-6, **d)(h)   # over steps and features
    h = L.LayerNormalization(center=False, **d)(h)
    h = L.LayerNormalization(scale=False, beta_regularizer=R.l2(0.05), **d)(h)
    h = L.LayerNormalization(center=False, scale=False, **d)(h)
    h = L.Flatten(**d)(h)
    out = L.Dense(3, activation="softmax", **d)(h)
    km = keras.Model(inp, out)
    randomize_weights(km)
    x = np.random.default_rng(4).integers(0, 11, (6, 7)).astype("int32")
    source = all_checks(km, x, random_labels(6, 3), tmp_path)
    assert "nn.Embedding(11, 6)" in source and "nn.LayerNorm((7, 5), eps=1e-06)" in source
    assert "bias=False" in source and "elementwise_affine=False" in source


@pytest.mark.parametrize("dtype", DTYPES)
def test_embedding_of_float_indices(dtype, keras_seed, tmp_path):
    """A float input is cast to integers by Keras (truncated toward zero), and by the port."""
    keras_seed(9)
    km = keras.Sequential([keras.Input((4,), dtype=dtype), L.Embedding(9, 3, dtype=dtype), L.Flatten(dtype=dtype)])
    x = np.random.default_rng(5).uniform(0, 8.99, (6, 4)).astype(dtype)
    source = all_checks(km, x, random_inputs((12,), dtype), tmp_path, loss="mse")
    assert ".long()" in source


@pytest.mark.parametrize("dtype", DTYPES)
def test_frozen_layers_are_frozen_and_unregularized(dtype, keras_seed, tmp_path):
    """trainable=False on Embedding, LayerNormalization and PReLU: no gradient, and no penalty
    (Keras counts the regularizers of trainable weights only)."""
    keras_seed(14)
    d = dict(dtype=dtype)
    frozen = dict(trainable=False, **d)
    inp = keras.Input((5,), dtype="int32")
    h = L.Embedding(8, 4, embeddings_regularizer=R.l2(0.1), **frozen)(inp)
    h = L.LayerNormalization(gamma_regularizer=R.l2(0.1), **frozen)(h)
    h = L.LayerNormalization(scale=False, beta_regularizer=R.l2(0.1), **frozen)(h)
    h = L.PReLU(alpha_regularizer=R.l2(0.1), **frozen)(h)
    h = L.Dense(3, kernel_regularizer=R.l2(0.01), **d)(h)
    out = L.Flatten(**d)(h)
    km = keras.Model(inp, out)
    randomize_weights(km)
    x = np.random.default_rng(6).integers(0, 8, (6, 5)).astype("int32")
    source = all_checks(km, x, random_inputs((15,), dtype), tmp_path, loss="mse")
    assert "weight_decay" in source and source.split("def l2_penalty")[1].count(".square().sum()") == 1
    tm = keras_to_torch(km)
    assert [n for n, p in tm.named_parameters() if p.requires_grad] == [f"{km.layers[-2].name}.weight",
                                                                          f"{km.layers[-2].name}.bias"]


def test_embedding_and_layernorm_refusals():
    emb = L.Embedding(5, 2, name="emb_lora")
    km = keras.Sequential([keras.Input((4,), dtype="int32"), emb])
    emb.enable_lora(1)
    with pytest.raises(PortError, match=r"'emb_lora' \(Embedding\).*LoRA"):
        keras_to_torch(km)
    emb = L.Embedding(5, 2, name="emb_int8")
    km = keras.Sequential([keras.Input((4,), dtype="int32"), emb])
    emb.quantize("int8")
    with pytest.raises(PortError, match=r"'emb_int8' \(Embedding\).*quantization"):
        keras_to_torch(km)
    with pytest.raises(PortError, match=r"'ln_steps' \(LayerNormalization\).*axis"):
        keras_to_torch(keras.Sequential([keras.Input((4, 3)), L.LayerNormalization(axis=1, name="ln_steps")]))
    with pytest.warns(UserWarning):
        ln = L.LayerNormalization(rms_scaling=True, name="ln_rms")
    with pytest.raises(PortError, match=r"'ln_rms' \(LayerNormalization\).*rms_scaling"):
        keras_to_torch(keras.Sequential([keras.Input((4,)), ln]))
