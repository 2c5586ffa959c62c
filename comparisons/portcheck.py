"""Checks of a port against its Keras model, shared by the porter's tests.

* ``assert_forward``: outputs equal (inference, or training mode for layers that differ);
* ``assert_gradients``: the gradient of data loss + Keras's penalties, tensor by tensor;
* ``assert_standalone``: the generated file, imported in a fresh Python with only torch on
  the path (no l2compare), loads its weights and gives Keras's output.

Tolerances are relative to the largest magnitude compared: 1e-12 in float64, 1e-5 in float32
(float32 sums in another order differ by a few ulps of the largest partial sum).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import torch
from torch.nn import functional as F

from l2compare.porter import keras_to_torch, write

TOL = {"float32": 1e-5, "float64": 1e-12}


def _close(name: str, expected: np.ndarray, got: np.ndarray, dtype: str) -> None:
    expected, got = np.asarray(expected, np.float64), np.asarray(got, np.float64)
    assert expected.shape == got.shape, f"{name}: shape {got.shape}, Keras {expected.shape}"
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    diff = float(np.abs(expected - got).max(initial=0.0))
    assert diff <= TOL[dtype] * scale, f"{name}: max |Δ| = {diff:.3g} > {TOL[dtype]:g}·{scale:.3g} ({dtype})"


def _dtype(km) -> str:
    """The model's float type: its weights', or its first float input's for a model without weights."""
    dtypes = [str(w.dtype) for w in km.weights] or [str(t.dtype) for t in km.inputs]
    return "float64" if "float64" in dtypes else "float32"


def _torch_out(tm, out: torch.Tensor) -> np.ndarray:
    if tm.returns_logits:
        out = torch.softmax(out, -1)
    return out.detach().numpy()


def _as_torch(x):
    return [torch.from_numpy(np.asarray(a)) for a in (x if isinstance(x, list) else [x])]


def assert_forward(km, x, *, training: bool = False, tm=None):
    """Keras's output on ``x`` equals the port's (dropout-free models when ``training``)."""
    tm = keras_to_torch(km) if tm is None else tm
    tm.train(training)
    expected = keras.ops.convert_to_numpy(km(x, training=training))
    with torch.no_grad():
        got = _torch_out(tm, tm(*_as_torch(x)))
    _close("forward output", expected, got, _dtype(km))
    return tm


def keras_loss(km, x, y, loss: str):
    out = km(x, training=True)
    fn = keras.losses.sparse_categorical_crossentropy if loss == "sce" else keras.losses.mean_squared_error
    return keras.ops.mean(fn(y, out)) + sum(km.losses)


def torch_loss(tm, x, y, loss: str):
    out = tm(*_as_torch(x))
    y = torch.from_numpy(np.asarray(y))
    if loss == "sce":
        assert tm.returns_logits, "sce needs a softmax output"
        data = F.cross_entropy(out, y.long())
    else:
        data = F.mse_loss(out, y.to(out.dtype))
    return data + tm.source_module.l2_penalty(tm)


def assert_gradients(km, x, y, *, loss: str = "sce", tm=None):
    """The gradient of the training loss (data + every Keras penalty), tensor by tensor, in training mode."""
    import tensorflow as tf

    tm = keras_to_torch(km) if tm is None else tm
    tm.train()
    with tf.GradientTape() as tape:
        value = keras_loss(km, x, y, loss)
    grads = tape.gradient(value, km.trainable_variables)
    # The port's own weight reader maps Keras's gradients to torch's layout: put them in the
    # variables for a moment and read them out as a state dict.
    saved = [v.numpy() for v in km.trainable_variables]
    for v, g in zip(km.trainable_variables, grads):
        v.assign(np.zeros(v.shape, v.dtype) if g is None else g)
    keras_grads = tm.port.state()
    for v, s in zip(km.trainable_variables, saved):
        v.assign(s)
    tm.zero_grad()
    torch_value = torch_loss(tm, x, y, loss)
    torch_value.backward()
    _close("loss", np.array(float(value)), np.array(float(torch_value.detach())), _dtype(km))
    for name, p in tm.named_parameters():
        if p.requires_grad:
            got = np.zeros(p.shape) if p.grad is None else p.grad.numpy()
            _close(f"gradient of {name}", keras_grads[name], got, _dtype(km))
    return tm


def assert_standalone(km, x, tmp_path):
    """``l2compare port``'s file, imported with only torch importable from this project, matches Keras."""
    out = tmp_path / "model_torch.py"
    write(km, out)
    inputs = x if isinstance(x, list) else [x]
    for i, a in enumerate(inputs):
        np.save(tmp_path / f"x{i}.npy", a)
    script = textwrap.dedent(f"""
        import json, sys
        import numpy as np, torch
        sys.path.insert(0, {str(tmp_path)!r})
        import model_torch
        assert not [m for m in sys.modules if m.split('.')[0] in ('keras', 'tensorflow', 'porter', 'core')]
        model = model_torch.build().eval()
        xs = [torch.from_numpy(np.load({str(tmp_path)!r} + f'/x{{i}}.npy')) for i in range({len(inputs)})]
        with torch.no_grad():
            out = model(*xs)
        np.save({str(tmp_path)!r} + '/out.npy', out.numpy())
        print(json.dumps({{'penalty': float(model_torch.l2_penalty(model).detach()), 'groups': len(model_torch.param_groups(model))}}))
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    got = np.load(tmp_path / "out.npy")
    tm = keras_to_torch(km)
    if tm.returns_logits:
        got = torch.softmax(torch.from_numpy(got), -1).numpy()
    expected = keras.ops.convert_to_numpy(km(x, training=False))
    _close("standalone file output", expected, got, _dtype(km))
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    _close("standalone l2_penalty", np.array(float(sum(km.losses)) if km.losses else 0.0),
           np.array(facts["penalty"]), _dtype(km))
    return out.read_text()


# Inputs and weights for the layer tests (test_port_norm, test_port_noise).

def randomize_weights(km, seed=0):
    """Weights away from their initial values (γ ≠ 1, β ≠ 0, moving statistics ≠ 0/1, α ≠ 0), so
    that a weight in the wrong place shows."""
    rng = np.random.default_rng(seed)
    for v in km.weights:
        name = v.path.split("/")[-1]
        if name in ("moving_variance", "gamma"):
            value = rng.uniform(0.5, 1.5, v.shape)
        elif name in ("moving_mean", "beta", "bias", "alpha"):
            value = rng.normal(0.0, 0.5, v.shape)
        else:
            continue
        v.assign(value.astype(v.dtype))


def randomize_normal(km, seed):
    """Every weight drawn from N(0, 0.5²): non-zero biases and weights of both signs, so a misplaced bias or a
    flipped kernel shows (the convolution tests; ``randomize_weights`` keeps BatchNorm's statistics valid)."""
    rng = np.random.default_rng(seed)
    for v in km.weights:
        v.assign((rng.normal(size=v.shape) * 0.5).astype(v.dtype))


def model_data(km, loss, seed, n=5):
    """``n`` samples shaped like ``km``'s input, and targets for ``loss`` ("sce": class labels, else real values)."""
    rng = np.random.default_rng(seed)
    dtype = str(km.inputs[0].dtype)
    x = rng.normal(size=(n, *km.inputs[0].shape[1:])).astype(dtype)
    out = km.outputs[0].shape
    y = rng.integers(0, out[-1], size=n) if loss == "sce" else rng.normal(size=(n, *out[1:])).astype(dtype)
    return x, y


def random_inputs(shape, dtype, n=6, seed=1):
    return np.random.default_rng(seed).normal(1.0, 2.0, (n, *shape)).astype(dtype)


def random_labels(n, k, seed=2):
    return np.random.default_rng(seed).integers(0, k, n)


def all_checks(km, x, y, tmp_path, loss="sce"):
    tm = assert_forward(km, x)
    assert_forward(km, x, training=True, tm=tm)
    assert_gradients(km, x, y, loss=loss)
    return assert_standalone(km, x, tmp_path)
