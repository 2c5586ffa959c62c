"""jit_compile="auto" is XLA on the JAX backend (test_backend_facts). Whether XLA's float32 step differs
from the same step run op by op is a fact of the CPU, not of XLA: where its code generator may emit
fused multiply-adds (FMA3, x86's AVX2 level and up), a fused step contracts a product and a sum that op
by op rounds apart, and lands a few ulps away; capped below FMA (``XLA_FLAGS=--xla_cpu_max_isa=SSE4_2``,
one of ``make test-cpus``'s environments, or ``AVX``), the two are the same bits.

``comparisons/jax_probe.py xla`` builds a Dense 64→64 relu→10 softmax model, both kernels with an L2
regularizer of 0.01, float32 weights from a NumPy RNG, one fixed batch of 32, and takes one step with
``jit_compile=True`` and with ``jit_compile=False`` from the same weights (SGD lr 0.01; Adam lr 2⁻⁷,
β1 0.875, β2 1 − 2⁻⁸, ε 2⁻²³: constants exact in float32, so that the float64 step below is the exact
step of the same numbers); op by op again with the batch in reverse order (the same step, its batch
sums in another float32 order); and the same step in float64, the exact step every float32 one rounds.
It reports which instructions XLA may use (the host's flags under XLA's cap). Units: ulps of the larger
of the weight before and after the step (``w − step`` is computed at that scale; where a step carries a
weight across or near zero, one ulp of the step is many ulps of the small result).

Measured on an AVX2 host without AVX-512 (AMD EPYC; 4810 weights; XLA against op by op | each float32
step's worst distance from the exact step, op by op / reversed order / XLA):

| cap | SGD: weights differ, max ulps | SGD: from exact | Adam: differ, max ulps | Adam: from exact |
|---|---|---|---|---|
| none or ``AVX2`` | 26, 1 | 4.4 / 5.8 / 5.4 | 2, 1 | 4.0 / 3.0 / 3.0 |
| ``AVX`` or ``SSE4_2`` | 0 (the same bits) | 4.4 / 5.8 / 4.4 | 0 | 4.0 / 3.0 / 4.0 |

(With Adam's default constants, which float32 does not hold, 133 weights differ, up to 3 ulps: XLA
fuses the products of their roundings too. An AVX-512 host, no cap, measured SGD 21 weights, 2 ulps.)
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
    # XLA_FLAGS passes through: under make test-cpus it carries the ISA cap this run emulates.
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, str(PROBE), "xla", "--cases", ",".join(CASES)], capture_output=True,
                          text=True, env=env, timeout=300, cwd=PROBE.parents[1])
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["backend"] == "jax"
    return out


@pytest.mark.parametrize("case", CASES)
def test_xla_step_repeats_bit_for_bit(measured, case):
    """The difference below is XLA's rounding, not noise: the compiled step, run twice, agrees to the bit
    (and, measured, the same bits pinned to one core as on two)."""
    m = measured["cases"][case]
    assert m["repeats"]
    assert m["moved"] > 1e-3        # the step did move the weights (measured 0.011; Adam's: lr·sign(g), 0.0078)


def test_xla_step_differs_from_op_by_op_only_where_it_may_use_fma(measured):
    """With FMA allowed (the host has it, and no cap below AVX2), some weights differ (measured 26 and 2
    of 4810 in the two cases); without it, XLA's step is op by op's, bit for bit, in every case."""
    isa, cases = measured["isa"], measured["cases"]
    if isa["fma"]:
        assert sum(m["differ"] for m in cases.values()) > 0, (isa, cases)
    else:
        for case, m in cases.items():
            assert m["differ"] == 0 and m["xla_sha"] == m["eager_sha"], (case, isa, m)


@pytest.mark.parametrize("case", CASES)
def test_xla_step_is_op_by_op_up_to_float32_rounding(measured, case):
    """XLA and op by op are two float32 evaluations of one step. Its exact value is the float64 step
    from the same weights; op by op lands within e_A of it, and op by op on the batch in reverse order
    (another float32 evaluation) within e_B, both measured in this run on this CPU. Two evaluations
    each as accurate as these stand at most e_A + e_B apart, and differ only in weights where one of
    them is not the correctly rounded exact weight: XLA's distance from op by op must stay within both.
    It fails if XLA's step stops being a float32 rounding of the same step: a changed formula, or λ off
    by 1% with SGD (lr·2λ·1% = 2e-6 of |w|, about 17 ulps of scale in every regularized weight)."""
    m = measured["cases"][case]
    e_a, e_b = m["error"]["eager"], m["error"]["reordered"]
    assert e_a["misrounded"] > 0 and e_b["misrounded"] > 0, m["error"]   # the yardstick measures something
    budget = e_a["max_ulps"] + e_b["max_ulps"]
    assert m["max_ulps"] <= budget, (
        f"{case}: XLA's step differs from op by op by {m['max_ulps']:g} ulps of scale (max |Δw| "
        f"{m['max_abs']:.3g}), more than two float32 evaluations can ({e_a['max_ulps']:g} + {e_b['max_ulps']:g})")
    assert m["differ"] <= e_a["misrounded"] + e_b["misrounded"], (
        f"{case}: XLA's step differs from op by op in {m['differ']} of {m['n']} weights, more than two float32 "
        f"evaluations round away from the exact step ({e_a['misrounded']} + {e_b['misrounded']})")
