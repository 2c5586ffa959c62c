"""torch_impl models mirror keras_impl: parameter counts, shapes, L2 placement, penalty."""
import pytest
import torch

import torch_impl
from torch_impl import l2 as torch_l2
from torch_impl.weights import canonical_name, from_canonical, to_canonical

PARAMS = {"mlp": 101_770, "cnn": 34_826, "mlp_bias": 101_770}

# Keras shapes (Keras layout) of every tensor, as keras_impl builds them.
KERAS_SHAPES = {
    "mlp": {"hidden/kernel": (784, 128), "hidden/bias": (128,), "out/kernel": (128, 10), "out/bias": (10,)},
    "cnn": {"conv1/kernel": (3, 3, 1, 32), "conv1/bias": (32,), "conv2/kernel": (3, 3, 32, 64),
            "conv2/bias": (64,), "out/kernel": (1600, 10), "out/bias": (10,)},
}
KERAS_SHAPES["mlp_bias"] = KERAS_SHAPES["mlp"]


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_parameter_count_and_shapes(name):
    model = torch_impl.build_model(name)
    assert sum(p.numel() for p in model.parameters()) == PARAMS[name]
    shapes = {canonical_name(n): tuple(to_canonical(p.detach().numpy()).shape) for n, p in model.named_parameters()}
    assert shapes == KERAS_SHAPES[name]


@pytest.mark.parametrize("name,expected", [
    ("mlp", {"hidden/kernel": 0.01}),
    ("mlp_bias", {"hidden/kernel": 0.01, "hidden/bias": 0.01, "out/bias": 0.01}),
    ("cnn", {"conv1/kernel": 0.01, "conv2/kernel": 0.01}),
])
def test_l2_coefficients_match_keras_placement(name, expected):
    """Canonical names, as keras_impl.l2.coefficients gives them (tests/test_keras_models.py)."""
    assert torch_l2.coefficients(torch_impl.build_model(name, l2=0.01)) == expected
    assert torch_l2.coefficients(torch_impl.build_model(name, l2=0)) == {}
    assert torch_l2.coefficients(torch_impl.build_model(name, l2=None)) == {}


def test_penalty_value_and_gradient():
    model = torch_impl.build_model("mlp_bias", l2=0.25, dtype=torch.float64)
    params = dict(model.named_parameters())
    pen = torch_l2.penalty(model)
    expected = sum(0.25 * params[n].square().sum() for n in ("hidden.weight", "hidden.bias", "out.bias"))
    torch.testing.assert_close(pen, expected, rtol=0, atol=1e-12)
    pen.backward()
    # Keras L2 has no ½: the gradient is 2λw on regularized tensors, 0 elsewhere.
    torch.testing.assert_close(params["hidden.weight"].grad, 0.5 * params["hidden.weight"].detach())
    assert params["out.weight"].grad is None or torch.count_nonzero(params["out.weight"].grad) == 0


def test_outputs_are_logits_of_the_right_shape():
    torch.manual_seed(0)
    assert torch_impl.build_model("mlp")(torch.rand(4, 784)).shape == (4, 10)
    logits = torch_impl.build_model("cnn")(torch.rand(4, 1, 28, 28))
    assert logits.shape == (4, 10)
    # Logits, not probabilities: rows do not sum to one.
    assert not torch.allclose(logits.sum(1), torch.ones(4))


def test_layout_round_trip():
    w = torch.rand(64, 32, 3, 3).numpy()
    assert (from_canonical(to_canonical(w)) == w).all()
    assert to_canonical(w).shape == (3, 3, 32, 64)
