"""keras.applications, as users bring them (``l2compare.porter.applications``: weights=None, smallest input,
10 classes, L2 on every kernel, BatchNorm statistics and biases randomized): each ports exactly, alone and
as the frozen or trained backbone of a transfer-learning model.

Bounds. float64: forward (relative to max |output|) and penalty (relative) <= 1e-12, the porter's float64
bound (comparisons/portcheck.py). float32: forward <= 1e-5 relative to max |output|, or, where deep nets with
randomized BatchNorm amplify rounding beyond it (EfficientNetV2B1: 4e-5), the bound derived in the same run
from each framework's own float32 rounding against a float64 twin (applications.float32_bound); in
float64 likewise, 1e-12 + 2^-29 x Keras's own float32 error (applications.float64_bound: EfficientNetV2S
amplifies float64 rounding to 1.9e-11). The penalty stays within 1e-12 everywhere.
"""
import pytest

from l2compare.porter import applications

TOL = {"float64": 1e-12, "float32": 1e-5}
# `make test`: the applications that bring the layers no other test model has, at their smallest: MobileNetV3
# (Rescaling, hard-swish as ReLU(6) and ops nodes, squeeze-and-excite), EfficientNet (Rescaling, Normalization,
# drop connect), ConvNeXt's own builder at narrow widths (the nested stem Sequential, LayerScale). float32 for
# the first two: torch's float64 depthwise convolution is the slow reference loop (thnn), seconds per forward
# pass. Every application, the rest of each family included, in both dtypes: the slow tier (below), about
# 10 s to 3 min each here; the families' smallest alone would take 2 min of `make test`.
FAST = [("MobileNetV3Small", "float32"), ("EfficientNetB0", "float32"), ("ConvNeXtNarrow", "float64")]


def _check(model, dtype: str, what: str, name: str = "", rebuild=None) -> dict:
    """``rebuild(dtype)``: ``model``'s architecture in another dtype, for the derived bounds (default: the
    application ``name`` itself)."""
    result = applications.measure(model, dtype)
    assert result["terms"] == result["keras_terms"] > 0, f"{what}: {result['terms']} penalty terms, Keras " \
                                                         f"{result['keras_terms']}"
    bound = TOL[dtype]
    if result["forward"] > bound and dtype == "float32" and name in applications.APPLICATIONS \
            and name not in applications.FLOAT32_ONLY:
        bound = max(bound, applications.float32_bound(name, model, result, rebuild))   # each framework's own rounding
    if result["forward"] > bound and dtype == "float64" and name in applications.APPLICATIONS:
        bound = applications.float64_bound(name, model, result, rebuild)   # 1e-12 + 2^-29 x Keras's float32 error
    assert result["forward"] <= bound, f"{what} {dtype}: forward max |Δ|/max |y| = {result['forward']:.3g} > {bound:.3g}"
    assert result["penalty"] <= TOL["float64" if dtype == "float64" else "float32"], \
        f"{what} {dtype}: penalty relative difference {result['penalty']:.3g}"
    return result


@pytest.mark.parametrize("name,dtype", FAST)
def test_applications_with_the_new_layers_port_exactly(name, dtype):
    _check(applications.build(name, dtype), dtype, name, name)


def test_a_transfer_learning_model_ports_exactly_frozen_and_not():
    """base(include_top=False) called with training=False + GAP + Dense: frozen, only the new Dense is
    regularized (one term); trained, every kernel of the base too."""
    model = applications.transfer("ConvNeXtNarrow", "float64", frozen=True)
    assert _check(model, "float64", "transfer, frozen base")["terms"] == 1
    model.get_layer("convnext_narrow").trainable = True
    assert _check(model, "float64", "transfer, trained base")["terms"] > 1


# EfficientNetV2L is built with its residual branches halved (applications.DAMPED): with Keras's own values its
# float64 output has no correct digit to compare a port against (test_efficientnetv2l_is_chaotic_undamped).


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", list(applications.APPLICATIONS))
def test_every_application_ports_exactly(name, dtype):
    """Every keras.applications model in both dtypes (ConvNeXtLarge and XLarge in float32 only:
    applications.FLOAT32_ONLY): over an hour on 2 cores, the large ones building hundreds of millions of
    parameters; nothing smaller covers them."""
    if dtype == "float64" and name in applications.FLOAT32_ONLY:
        pytest.skip("float64 does not fit: applications.FLOAT32_ONLY")
    _check(applications.build(name, dtype), dtype, name, name)


def _transfer_cases():
    """Every application in both dtypes (ConvNeXtLarge and XLarge in float32 only, as above)."""
    return [(name, dtype) for dtype in ("float32", "float64") for name in applications.APPLICATIONS
            if not (dtype == "float64" and name in applications.FLOAT32_ONLY)]


@pytest.mark.slow
@pytest.mark.parametrize("frozen", [False, True])
@pytest.mark.parametrize("name,dtype", _transfer_cases())
def test_every_application_as_a_transfer_learning_backbone(name, dtype, frozen):
    """Every application as a nested backbone (include_top=False, called with training=False, GAP and a new
    Dense), frozen and not, in both dtypes: float32 took 6 min on 2 cores (pytest -n 2), the large ones building
    hundreds of millions of parameters."""
    model = applications.transfer(name, dtype, frozen=frozen)
    _check(model, dtype, f"{name} transfer frozen={frozen}", name,
           rebuild=lambda d: applications.transfer(name, d, frozen=frozen))


@pytest.mark.slow
def test_efficientnetv2l_is_chaotic_undamped():
    """Why applications.DAMPED: undamped, Keras's EfficientNetV2L moves its own float64 output by more than 10%
    of max |output| under a 1e-15 relative change of its input (measured 78%); damped, by rounding alone
    (< 1e-13; measured 1.3e-15). About 40 s: two 118 M-parameter builds, nothing smaller is this deep."""
    import numpy as np

    damped = applications.build("EfficientNetV2L", "float64")
    x = np.random.default_rng(0).random((2, *damped.input_shape[1:]))

    def moved(model):
        y, y_nudged = (np.asarray(model(a, training=False)) for a in (x, x * (1 + 1e-15)))
        return float(np.abs(y - y_nudged).max() / np.abs(y).max())

    assert moved(damped) < 1e-13
    del damped
    saved, applications.DAMPED = applications.DAMPED, {}
    try:
        assert moved(applications.build("EfficientNetV2L", "float64")) > 0.1
    finally:
        applications.DAMPED = saved
