"""Which torch recipe is the same computation as which Keras configuration — step by step.

Every case starts both frameworks from Keras's initial weights, feeds the same
batches (100 samples of the article's random data, batch 32: a partial batch of 4
every epoch), and compares every tensor after every one of 52 steps (13 epochs). Equivalence asserts
max |Δw| ≤ 1e-12 in float64 and ≤ 1e-5 in float32, and the same for the losses
Keras reports. float64 cases use hyperparameters representable in float32,
because TensorFlow casts Python-float hyperparameters through float32.
"""
import pytest

from comparisons.parity import EXACT, PRESETS, ParityCase, preset_optimizer, run

LAMBDA = {dtype: PRESETS[dtype]["l2"] for dtype in PRESETS}
WD = {dtype: PRESETS[dtype]["weight_decay"] for dtype in PRESETS}
F32, F64 = PRESETS["float32"]["optimizers"], PRESETS["float64"]["optimizers"]


def assert_equivalent(result):
    tol = EXACT[result.case.dtype]
    assert result.steps >= 50
    name, step, diff = result.worst_tensor()
    assert diff <= tol, f"{result.describe()} — tensor {name} differs by {diff:.3g} > {tol:g} at step {step}"
    for key, loss_diff in result.loss_diff.items():
        assert loss_diff <= tol, f"{result.describe()} — reported {key} differs by {loss_diff:.3g} > {tol:g}"


def assert_not_equivalent(result, margin):
    assert result.worst > margin, f"expected a mistake to show, but {result.describe()} (margin {margin:g})"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("recipe", ["penalty", "coupled"])
@pytest.mark.parametrize("model", ["mlp", "cnn", "mlp_bias"])
def test_keras_l2_equals_torch_penalty_and_coupled(model, recipe, optimizer, dtype):
    case = ParityCase(model=model, keras_config="l2", recipe=recipe, optimizer=preset_optimizer(optimizer, dtype),
                      l2=LAMBDA[dtype], dtype=dtype)
    assert_equivalent(run(case))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("exclude_bias", [False, True], ids=["all", "exclude_bias"])
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam", "adamw"])
def test_keras_weight_decay_equals_torch_decoupled(optimizer, exclude_bias, dtype):
    # mlp_bias: a model whose name contains "bias", where Keras's var_names=["bias"] would misfire.
    opt = preset_optimizer(optimizer, dtype, weight_decay=WD[dtype], exclude_bias=exclude_bias)
    case = ParityCase(model="mlp_bias", keras_config="wd", recipe="decoupled", optimizer=opt,
                      l2=LAMBDA[dtype], dtype=dtype)
    assert_equivalent(run(case))


# The mistakes, in the article's float32 setting (λ = 0.01, Adam defaults) unless said.
# Each margin sits two orders of magnitude above the float32 noise (1e-5) and well below
# the size measured over the same 52 steps (given in each comment).
MARGIN = 1e-3


def test_naive_weight_decay_is_not_l2():
    # weight_decay=λ on every parameter: half the strength, and biases decayed. Measured 0.062.
    assert_not_equivalent(run(ParityCase(model="mlp", recipe="naive_wd", optimizer=F32["adam"])), MARGIN)


def test_naive_adamw_is_not_l2_with_adam():
    # AdamW(weight_decay=λ) in place of l2(λ) + Adam. Measured 0.058.
    assert_not_equivalent(run(ParityCase(model="mlp", recipe="naive_adamw", optimizer=F32["adam"])), MARGIN)


def test_decoupled_is_not_l2_with_adam_even_on_the_right_tensors_at_2_lambda():
    # Decoupled 2λ on exactly the regularized tensors: still not L2 once Adam rescales. Measured 0.058.
    assert_not_equivalent(run(ParityCase(model="mlp", recipe="decoupled", optimizer=F32["adam"])), MARGIN)


def test_decoupled_equals_l2_with_plain_sgd():
    # A known coincidence, asserted so that nobody generalizes it: with plain SGD,
    # w -= lr·2λ·w then w -= lr·g is exactly w -= lr·(g + 2λw).
    assert_equivalent(run(ParityCase(model="mlp", recipe="decoupled", optimizer=F32["sgd"])))


@pytest.mark.parametrize("eps", [1e-7, None], ids=["keras_eps_1e-7", "torch_default_1e-8"])
def test_constant_torch_eps_is_not_keras_adam(eps):
    # torch.optim.Adam puts ε inside the bias correction; Keras outside. Measured 4.6e-3 for both ε:
    # early steps, where √(1−β2ᵗ) is small, dominate.
    case = ParityCase(model="mlp", recipe="penalty", optimizer=F32["adam"], torch_optimizer="torch", torch_epsilon=eps)
    assert_not_equivalent(run(case), MARGIN)


def test_stock_torch_sgd_with_momentum_is_keras_momentum_up_to_rounding():
    # torch's b = μb + g; w -= lr·b equals Keras's m = μm − lr·g; w += m in exact arithmetic.
    case = ParityCase(model="mlp", recipe="coupled", optimizer=F32["momentum"], torch_optimizer="torch")
    assert_equivalent(run(case))


def test_lambda_instead_of_2_lambda_is_not_l2():
    # torch weight_decay=λ on the right tensors (Keras's gradient is 2λw). Measured 0.061.
    case = ParityCase(model="mlp", recipe="coupled", optimizer=F32["adam"], torch_l2_scale=0.5)
    assert_not_equivalent(run(case), MARGIN)


def test_missing_flatten_permutation_is_not_the_same_model():
    # torch's (C, H, W) flatten with Keras's (H, W, C) Dense rows. Measured 0.055 (float64).
    case = ParityCase(model="cnn", recipe="penalty", optimizer=F64["adam"], l2=LAMBDA["float64"], dtype="float64",
                      flatten="torch")
    assert_not_equivalent(run(case), MARGIN)


def test_float32_rounding_flips_relu_kinks_on_digits_but_float64_stays_exact():
    """A known limit of float32 parity, asserted rather than hidden.

    On digits, blank backgrounds make conv pre-activations equal their bias, at ReLU's
    kink; the frameworks' different summation orders (float32 noise ~1e-7) flip some
    units, and Adam, which rescales tiny gradients to steps of size lr, turns that into
    differences of ~lr (measured 1.7e-3 after 52 steps). The same case in float64 is exact,
    so this is rounding, not a different computation.
    """
    f32 = run(ParityCase(model="cnn", optimizer=F32["adam"], dataset="digits"))
    assert f32.worst > EXACT["float32"], f32.describe()
    f64 = run(ParityCase(model="cnn", optimizer=F64["adam"], l2=LAMBDA["float64"], dtype="float64", dataset="digits"))
    assert_equivalent(f64)


def _long(model, optimizer, dtype):
    # 500 steps over 1000 samples (16 epochs, each ending in a partial batch of 8).
    return run(ParityCase(model=model, recipe="penalty", optimizer=preset_optimizer(optimizer, dtype),
                          l2=LAMBDA[dtype], dtype=dtype, steps=500, n_samples=1000))


@pytest.mark.slow
@pytest.mark.parametrize("model,dtype", [("mlp", "float64"), ("cnn", "float64"), ("mlp_bias", "float64"),
                                         ("mlp", "float32"), ("mlp_bias", "float32")])
@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_long_trajectories_stay_equivalent(model, optimizer, dtype):
    result = _long(model, optimizer, dtype)
    tol = {"float32": 1e-4, "float64": 1e-12}[dtype]  # float32 noise accumulates over 500 steps
    assert result.worst <= tol, result.describe()


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_float32_cnn_trajectories_drift_apart_over_hundreds_of_steps(optimizer):
    """A known limit, asserted rather than hidden: float32 agreement on the CNN depends on data and horizon.

    With 1000 samples (32 steps per epoch) the two float32 trajectories pass 1e-5 after 41 steps
    with momentum and after 8 with Adam (measured), and differ by up to ~0.03–0.045 by step 500:
    summation-order rounding (~1e-7) flips ReLUs near their kink and Adam rescales tiny gradients
    to steps of size lr. The same cases in float64 stay ≤ 1e-12 for all 500 steps
    (test_long_trajectories_stay_equivalent), so the recipes are the same computation; the 52-step
    float32 proofs above hold on their 100-sample data, not in general.
    """
    result = _long("cnn", optimizer, "float32")
    assert result.worst > 1e-4, result.describe()
