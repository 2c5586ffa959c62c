"""jit_compile="auto" is XLA on the JAX backend (test_backend_facts), and XLA fuses and reorders float32
arithmetic: one optimizer step compiled by XLA lands a few ulps from the same step run op by op.

``comparisons/jax_probe.py xla`` builds a Dense 64→64 relu→10 softmax model, both kernels with an L2
regularizer of 0.01, float32 weights from a NumPy RNG, one fixed batch of 32, and takes one step with
``jit_compile=True`` and with ``jit_compile=False`` from the same weights (SGD lr 0.01; Adam lr 0.01).
Units: ulps of the larger of the weight before and after the step (``w − step`` is computed at that
scale; where a step carries a weight across or near zero, one ulp of the step is many ulps of the small
result, so ulps of the result alone read up to 8 for SGD and 32 for Adam here).
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = Path(__file__).with_name("jax_probe.py")
CASES = ("mlp_sgd", "mlp_adam")


@pytest.fixture(scope="module")
def measured() -> dict:
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("XLA_FLAGS", None)
    done = subprocess.run([sys.executable, str(PROBE), "xla", "--cases", ",".join(CASES)], capture_output=True,
                          text=True, env=env, timeout=300, cwd=PROBE.parents[1])
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["backend"] == "jax"
    return out["cases"]


@pytest.mark.parametrize("case", CASES)
def test_xla_step_repeats_bit_for_bit(measured, case):
    """The difference below is XLA's rounding, not noise: the compiled step, run twice, agrees to the bit
    (and, measured, the same bits pinned to one core as on two)."""
    assert measured[case]["repeats"]
    assert measured[case]["moved"] > 1e-3        # the step did move the weights (measured 0.011, 0.010)


@pytest.mark.parametrize("case", CASES)
def test_xla_step_differs_from_op_by_op_by_a_few_ulps(measured, case):
    """Measured (4810 weights): SGD, 21 weights differ (0.44%), at most 2 ulps (2.98e-8 absolute);
    Adam, 115 differ (2.4%), at most 2 ulps (5.96e-8). Fails if XLA's difference disappears or grows.
    (A Conv2D 8×3×3 + Dense model, the probe's cnn cases: SGD 13 of 2970 differ, 1 ulp; Adam 36, 4 ulps.)"""
    m = measured[case]
    assert m["differ"] > 0, m
    assert m["frac"] < 0.05, m
    assert m["max_ulps"] <= 4, m
    assert m["max_ulps_after"] <= 64, m          # ulps of the result alone (measured 8 SGD, 32 Adam)
