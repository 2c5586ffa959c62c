"""verify flags the usual porting mistakes on a real-ish model: BatchNormalization, depthwise convolutions,
a residual Add, inside a nested backbone (comparisons/verify_models.py). Each mistake is injected into the
generated torch module or optimizer through verify's ``hook``; everything else (Keras's side, traced once per
configuration and reused, the data) is the same as in the clean run, which is exact."""
import types

import pytest
import torch

from comparisons.verify_models import nested_backbone
from l2compare.porter.verify.runner import verify

STEPS = 3


@pytest.fixture(scope="module")
def model():
    return nested_backbone()


def _bn(model):
    return [m for m in model.modules() if type(m).__name__ == "KerasBatchNorm"]


def _unbiased_forward(self, x):
    """KerasBatchNorm's forward with torch's running variance: the batch's unbiased variance (× n/(n−1))."""
    shape = [1] * x.dim()
    shape[self.dim] = -1
    axes = [d for d in range(x.dim()) if d != self.dim]
    mean = x.mean(axes, keepdim=True)
    var = (x - mean.detach()).square().mean(axes, keepdim=True)
    n = x.numel() // x.shape[self.dim]
    with torch.no_grad():
        self.running_mean.copy_(self.running_mean * self.momentum + mean.flatten() * (1.0 - self.momentum))
        self.running_var.copy_(self.running_var * self.momentum + var.flatten() * n / (n - 1) * (1.0 - self.momentum))
    inv = torch.rsqrt(var + self.eps) * self.weight.view(shape)
    return x * inv + (self.bias.view(shape) - mean * inv)


def _groups(scale_coupled=1.0, decoupled=False, epsilon=None):
    def hook(run, model, optimizer):
        if optimizer is None:
            return
        for group in optimizer.param_groups:
            if decoupled:   # Keras-style decoupled decay of the same size instead of coupled (w −= w·2λ·lr)
                group["weight_decay"], group["coupled_weight_decay"] = group["coupled_weight_decay"] or None, 0.0
            group["coupled_weight_decay"] = group.get("coupled_weight_decay", 0.0) * scale_coupled
            if epsilon is not None:
                group["epsilon"] = epsilon
    return hook


def _modules(**changes):
    def hook(run, model, optimizer):
        if optimizer is None:
            for bn in _bn(model):
                if changes.get("unbiased"):
                    bn.forward = types.MethodType(_unbiased_forward, bn)
                for key in ("momentum", "eps"):
                    if key in changes:
                        setattr(bn, key, changes[key])
    return hook


# (mistake, optimizer, recipe, hook). Measured (3 steps, at the worst tensor, of its max |·|): each one 100× or more
# past what rounding allows in float32 (the unbiased variance: 7e-6 against 7e-8), 1e9× in float64.
MISTAKES = [
    ("λ × 0.99 in coupled decay", "momentum", "coupled", _groups(scale_coupled=0.99)),
    ("λ instead of 2λ in coupled decay", "momentum", "coupled", _groups(scale_coupled=0.5)),
    ("decoupled decay instead of coupled", "momentum", "coupled", _groups(decoupled=True)),
    ("torch's stock ε 1e-8 in Keras's Adam", "adam", "penalty", _groups(epsilon=1e-8)),
    ("BatchNorm with torch's momentum 0.1", "momentum", "penalty", _modules(momentum=0.9)),
    ("BatchNorm with torch's ε 1e-5", "momentum", "penalty", _modules(eps=1e-5)),
    ("BatchNorm's running variance unbiased", "momentum", "penalty", _modules(unbiased=True)),
]


@pytest.mark.parametrize("optimizer,seed", [("momentum", 0), ("adam", 0), ("momentum", 1), ("adam", 2)])
def test_the_correct_port_is_exact(model, optimizer, seed):
    """Any data seed (the Keras side is traced once and reused)."""
    for r in verify(model, optimizer=optimizer, steps=STEPS, recipes=("penalty", "coupled"), seed=seed):
        assert r["verdict"] == "exact", (r["dtype"], r["recipe"], r["onestep"])
        assert r["layers"] == ["Add", "BatchNormalization", "Conv2D", "Dense", "DepthwiseConv2D",
                               "GlobalAveragePooling2D", "ReLU"]


@pytest.mark.parametrize("mistake,optimizer,recipe,hook", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_a_mistake_is_flagged_in_both_dtypes_from_step_1(model, mistake, optimizer, recipe, hook):
    for r in verify(model, optimizer=optimizer, steps=STEPS, recipes=(recipe,), hook=hook):
        assert r["verdict"] != "exact" and r["first_divergence"]["step"] == 1, (r["dtype"], r["onestep"])
        assert "a different computation" not in r["rule"]
