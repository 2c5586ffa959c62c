"""The Keras-exact optimizers against their definitions, and the recipes' decay placement."""
import math

import pytest
import torch

import torch_impl
from l2compare.core.spec import OptimizerSpec
from l2compare.core.names import REGULARIZED
from torch_impl import optim, recipes, weights


def _param(values):
    return torch.nn.Parameter(torch.tensor(values, dtype=torch.float64))


def _grads(steps, n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, generator=g, dtype=torch.float64) for _ in range(steps)]


def test_keras_adam_equals_torch_adam_with_step_dependent_eps():
    """KerasAdam ≡ torch Adam with eps_t = ε/√(1−β2ᵗ): ε sits outside the bias correction.
    (β exact in float32: in float64, KerasAdam rounds β through float32 as TensorFlow does.)"""
    eps, b1, b2 = 1e-3, 0.875, 1 - 2**-10  # a large ε, so that its placement matters
    ours, ref = _param([0.5, -1.0, 2.0]), _param([0.5, -1.0, 2.0])
    keras_adam = optim.KerasAdam([ours], lr=0.01, beta_1=b1, beta_2=b2, epsilon=eps)
    torch_adam = torch.optim.Adam([ref], lr=0.01, betas=(b1, b2), eps=eps)
    for t, g in enumerate(_grads(20), start=1):
        torch_adam.param_groups[0]["eps"] = eps / math.sqrt(1 - b2**t)
        ours.grad, ref.grad = g.clone(), g.clone()
        keras_adam.step()
        torch_adam.step()
        torch.testing.assert_close(ours, ref, rtol=0, atol=1e-14, msg=f"step {t}")
    # ...and a constant torch eps does not reproduce it.
    stock, ours2 = _param([0.5, -1.0, 2.0]), _param([0.5, -1.0, 2.0])
    a, b = torch.optim.Adam([stock], lr=0.01, eps=eps), optim.KerasAdam([ours2], lr=0.01, epsilon=eps)
    for g in _grads(20):
        stock.grad, ours2.grad = g.clone(), g.clone()
        a.step()
        b.step()
    assert (stock - ours2).abs().max() > 1e-4


def test_keras_sgd_momentum_form():
    """m = μ·m − lr·g; w += m (Keras), equal to torch's b = μ·b + g; w −= lr·b up to rounding."""
    ours, ref = _param([1.0, 2.0, 3.0]), _param([1.0, 2.0, 3.0])
    keras_sgd = optim.KerasSGD([ours], lr=0.1, momentum=0.875)  # exact in float32 (see below)
    torch_sgd = torch.optim.SGD([ref], lr=0.1, momentum=0.875)
    m = torch.zeros(3, dtype=torch.float64)
    w = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    for g in _grads(10):
        m = 0.875 * m - 0.1 * g
        w = w + m
        ours.grad, ref.grad = g.clone(), g.clone()
        keras_sgd.step()
        torch_sgd.step()
        torch.testing.assert_close(ours.detach(), w, rtol=0, atol=0)  # bit for bit the Keras formula
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-14)


def test_float64_hyperparameters_are_rounded_through_float32_as_tensorflow_does():
    """TensorFlow's ops.cast(0.9, float64) makes a float32 tensor first: a float64 Keras variable
    sees momentum 0.89999998 and β2 0.99900001. The Keras-exact optimizers do the same; in float32
    nothing changes."""
    import numpy as np

    g = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    p = _param([0.0, 0.0, 0.0])
    sgd = optim.KerasSGD([p], lr=0.1, momentum=0.9)
    for _ in range(2):
        p.grad = g.clone()
        sgd.step()
    mu = float(np.float32(0.9))
    expected = -0.1 * g + (mu * (-0.1 * g) - 0.1 * g)
    torch.testing.assert_close(p.detach(), expected, rtol=0, atol=1e-16)
    assert mu != 0.9 and (p.detach() - (-0.1 * g + (0.9 * (-0.1 * g) - 0.1 * g))).abs().max() > 1e-10
    adam, q = None, _param([0.0, 0.0, 0.0])
    adam = optim.KerasAdam([q], lr=1.0, beta_2=0.999, epsilon=0.0)
    q.grad = g.clone()
    adam.step()
    b2 = float(np.float32(0.999))
    # step 1: m = 0.1·g, v = 0.001·g², alpha = √(1−β2)/(1−β1) with β cast: −alpha·m/√v
    alpha = math.sqrt(1 - b2) / (1 - float(np.float32(0.9)))
    torch.testing.assert_close(q.detach(), -alpha * (1 - 0.9) * g / (math.sqrt(1 - 0.999) * g.abs()),
                               rtol=1e-15, atol=0)


@pytest.mark.parametrize("cls,kwargs", [(optim.KerasSGD, {"lr": 0.1}), (optim.KerasAdam, {"lr": 0.1})])
def test_keras_weight_decay_is_decoupled_and_per_group(cls, kwargs):
    decayed, excluded = _param([2.0]), _param([2.0])
    opt = cls([{"params": [decayed], "weight_decay": 0.5}, {"params": [excluded], "weight_decay": None}], **kwargs)
    decayed.grad, excluded.grad = torch.zeros(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
    opt.step()
    # A zero gradient moves nothing, so only the decay w −= w·wd·lr shows: 2 − 2·0.5·0.1 = 1.9.
    assert decayed.item() == pytest.approx(1.9, abs=1e-15)
    assert excluded.item() == 2.0


def test_recipes_put_decay_on_the_right_tensors():
    model = torch_impl.build_model("mlp_bias", l2=0.01)
    everything = [n for n, _ in weights.named_variables(model)]
    regularized = set(REGULARIZED["mlp_bias"])  # canonical names, as Keras's
    assert recipes.build("penalty", model).penalty == {n: 0.01 for n in regularized}
    assert recipes.build("coupled", model).coupled == {n: 0.02 for n in regularized}
    assert recipes.build("decoupled", model).decoupled == {n: 0.02 for n in regularized}
    wd = recipes.build("decoupled", model, weight_decay=0.1, exclude_bias=True).decoupled
    assert wd == {"hidden/kernel": 0.1, "out/kernel": 0.1}
    assert recipes.build("naive_wd", model, l2=0.01).coupled == {n: 0.01 for n in everything}
    assert recipes.build("naive_adamw", model, l2=0.01).decoupled == {n: 0.01 for n in everything}
    assert recipes.build("none", model) == recipes.Recipe("none")
    with pytest.raises(ValueError, match="unknown torch recipe 'l1'.*penalty"):
        recipes.build("l1", model)


def test_native_optimizers_use_torch_classes_and_defaults():
    model = torch_impl.build_model("mlp", l2=0.01)
    coupled = optim.stock_optimizer(model, OptimizerSpec("adam"), recipes.build("coupled", model))
    assert type(coupled) is torch.optim.Adam and coupled.defaults["eps"] == 1e-8
    assert sorted(g["weight_decay"] for g in coupled.param_groups) == [0.0, 0.02]
    adamw = optim.stock_optimizer(model, OptimizerSpec("adam"), recipes.build("naive_adamw", model, l2=0.01))
    assert type(adamw) is torch.optim.AdamW and [g["weight_decay"] for g in adamw.param_groups] == [0.01]
    sgd = optim.stock_optimizer(model, OptimizerSpec("sgd"), recipes.build("penalty", model))
    assert sgd.defaults["lr"] == 1e-3  # torch's SGD default; Keras's is 0.01
    exact = optim.make_optimizer(model, OptimizerSpec("sgd"), recipes.build("penalty", model))
    assert isinstance(exact, optim.KerasSGD) and exact.defaults["lr"] == 0.01
