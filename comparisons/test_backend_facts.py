"""What Keras 3.15 does differently on its TensorFlow, JAX and torch backends (issue: backends as columns).

Each backend runs ``comparisons/backend_probe.py`` in its own process (Keras picks its backend at
import) and reports what it measured; these tests fail if a difference disappears or changes size.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = Path(__file__).with_name("backend_probe.py")
BACKENDS = ("tensorflow", "jax", "torch")


def _probe(backend: str, *flags: str) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, str(PROBE), *flags], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def probe():
    """``probe(backend, *flags)``: each distinct probe runs once per session (a process start and a
    backend import each, seconds apiece); the tests below read the same measurement."""
    done: dict = {}

    def run(backend: str, *flags: str) -> dict:
        if (backend, flags) not in done:
            done[backend, flags] = _probe(backend, *flags)
        return done[backend, flags]

    return run


@pytest.fixture(scope="session")
def facts(probe) -> dict:
    return {backend: probe(backend) for backend in BACKENDS}


def test_each_probe_ran_on_its_backend(facts):
    assert {b: f["backend"] for b, f in facts.items()} == {b: b for b in BACKENDS}


def test_crossentropy_on_a_softmax_output_is_clipped_on_torch_and_jax_not_tensorflow(facts):
    """TensorFlow recovers the logits behind a softmax and uses the fused op: a sample whose true class has
    probability e^-30 costs 30 and still pulls on the kernel (gradient 1.0, measured). The torch and JAX
    backends clip the probability to [1e-7, 1 - 1e-7] (keras/src/backend/{torch,jax}/nn.py) and take the
    log: the loss stops at -log(1e-7) = 16.118 and the gradient is exactly zero."""
    tf, jx, th = (facts[b]["wrong_sample"] for b in BACKENDS)
    assert tf["loss"] == pytest.approx(30.0, abs=1e-4) and tf["grad_max"] == pytest.approx(1.0, abs=1e-6)
    for other in (jx, th):
        assert other["loss"] == pytest.approx(16.118095, abs=1e-5) and other["grad_max"] == 0.0


def test_optimizer_weight_decay_is_written_differently_on_torch(facts):
    """TensorFlow and JAX decay as w − w·wd·lr (base_optimizer._apply_weight_decay); the torch backend as
    w·(1 − wd·lr) (torch_optimizer._apply_weight_decay, torch's AdamW form). In float32 the two round
    differently on 1545 of 4096 normal weights (measured, wd 0.3, lr 0.1): bit for bit, each backend is its form."""
    for backend in ("tensorflow", "jax"):
        d = facts[backend]["weight_decay"]
        assert d["equals_subtract"] and not d["equals_multiply"], (backend, d)
    d = facts["torch"]["weight_decay"]
    assert d["equals_multiply"] and not d["equals_subtract"], d
    assert 1000 < d["forms_differ_on"] < 2000, d


def test_jit_compile_auto_resolves_per_backend(facts):
    """jit_compile="auto" (compile's default): XLA on JAX; not on TensorFlow on this CPU-only machine; eager on torch."""
    assert {b: f["jit_compile"] for b, f in facts.items()} == {"tensorflow": False, "jax": True, "torch": False}


def test_float64_needs_x64_on_jax(probe):
    """A float64 Keras model on JAX computes in float32 unless jax_enable_x64 is on; with it, a Dense
    layer is a float64 matmul to the last bit."""
    without, with_x64 = probe("jax")["float64"], probe("jax", "--x64")["float64"]
    assert without["dtype"] == "float32" and without["dense_error"] > 1e-9
    assert with_x64["dtype"] == "float64" and with_x64["dense_error"] <= 1e-15


def test_float64_hyperparameters_are_rounded_through_float32_on_tensorflow_only(facts, probe):
    """TensorFlow turns a Python float into a float32 tensor before casting it to a float64 variable
    (momentum 0.9 -> 0.8999999762, λ 0.01 -> 0.0099999998); JAX (with x64) and torch cast it exactly. A
    float64 port of Keras on TensorFlow rounds them the same way (torch_impl.optim), of Keras on JAX or
    torch it does not (torch_impl.optim.hyperparameters_of): a 2.6e-8 relative difference in momentum,
    which a float64 reference step shows (measured cross64 5.2e-8 of max |w| on the momentum rows)."""
    import numpy as np

    rounded = {"momentum": float(np.float32(0.9)), "l2": float(np.float32(0.01))}
    assert facts["tensorflow"]["casts"] == rounded
    assert facts["torch"]["casts"] == {"momentum": 0.9, "l2": 0.01}
    assert probe("jax", "--x64")["casts"] == {"momentum": 0.9, "l2": 0.01}
    assert rounded["momentum"] != 0.9 and rounded["l2"] != 0.01


def test_float64_on_the_torch_backend_is_float32_inside_a_dense_layer(facts):
    """Measured, not assumed: on Keras 3.15.1's torch backend a float64 model's tensors are float64, but
    its Dense matmul rounds like float32 (ops.matmul casts to dtypes.result_type(torch.float64,
    torch.float64), which is "float32"): 1.1e-7 off a float64 matmul on this input, where TensorFlow is
    exact. A torch-backend Keras model cannot be a float64 reference."""
    tf, th = facts["tensorflow"]["float64"], facts["torch"]["float64"]
    assert tf["dtype"] == th["dtype"] == "float64"
    assert tf["dense_error"] <= 1e-15
    assert 1e-9 < th["dense_error"] < 1e-5


def test_the_torch_guide_sum_of_losses_fails_with_two_regularized_tensors(facts):
    """On the torch backend a Keras model is an nn.Module, trainable by a torch optimizer if the loop adds
    its regularizers. The keras-io torch training-loop guide adds ``torch.sum(*model.losses)``: right with
    one regularized tensor, and a TypeError with two (torch.sum's second argument is ``dim``), where
    ``sum(model.losses)`` is right."""
    s = facts["torch"]["losses_sum"]
    assert s["is_module"]
    one, two = s["by_count"]["1"], s["by_count"]["2"]
    # Kernels of ones (3×3), λ 0.1: each layer's penalty is 0.1 × 9, in float32.
    assert one["right"] == pytest.approx(0.9, rel=1e-6) and two["right"] == pytest.approx(1.8, rel=1e-6)
    assert one["error"] is None and one["guide"] == pytest.approx(one["right"], rel=1e-6)
    assert two["error"] == "TypeError" and two["guide"] is None
