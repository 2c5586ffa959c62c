"""torch_impl training mirrors fit: batch order, history split, partial batch, step capture."""
import numpy as np
import pytest
import torch

import torch_impl
from l2compare.core.spec import OptimizerSpec
from torch_impl import l2 as torch_l2
from torch_impl import optim, recipes, train


def _data(n=70, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 28, 28, 1)).astype("float32")
    return train.as_inputs(x, "mlp", "float32"), torch.as_tensor(rng.integers(0, 10, n))


@pytest.mark.parametrize("recipe_name", ["penalty", "coupled"])
def test_history_reports_keras_loss_whatever_the_recipe(recipe_name):
    model = torch_impl.build_model("mlp", l2=0.01)
    recipe = recipes.build(recipe_name, model)
    opt = optim.make_optimizer(model, OptimizerSpec("sgd", lr=1e-12), recipe)  # ~frozen
    x, y = _data()
    row = train.fit(model, opt, x, y, batch_size=32, order=[np.arange(70)], x_test=x, y_test=y).history[0]
    assert row["loss"] == pytest.approx(row["data_loss"] + row["penalty"], abs=1e-6)
    assert row["penalty"] == pytest.approx(torch_l2.penalty(model).item(), rel=1e-5)
    assert 0 <= row["test_accuracy"] <= 1


def test_capture_every_step_including_the_partial_batch():
    model = torch_impl.build_model("mlp", l2=0.01)
    recipe = recipes.build("penalty", model)
    opt = optim.make_optimizer(model, OptimizerSpec("sgd", lr=0.1), recipe)
    x, y = _data()
    order = [np.random.default_rng(e).permutation(70) for e in range(2)]
    result = train.fit(model, opt, x, y, batch_size=32, order=order, capture_steps=True)
    assert len(result.steps) == 6  # 32 + 32 + 6 per epoch
    # Snapshots are copies: the first bias snapshot must differ from the last.
    assert not np.array_equal(result.steps[0]["out/bias"], result.steps[-1]["out/bias"])


def test_penalty_is_minimized_only_by_the_penalty_recipe():
    """Under `coupled` the penalty is reported but not in the loss: gradients equal data loss only."""
    torch.manual_seed(0)
    model = torch_impl.build_model("mlp", l2=10.0)
    x, y = _data(32)
    for name in ("penalty", "coupled"):
        recipe = recipes.build(name, model)
        opt = torch.optim.SGD(model.parameters(), lr=0.0)
        opt.recipe = recipe  # what optim.make_optimizer records: the recipe's penalty is fit's to add
        train.fit(model, opt, x, y, batch_size=32, order=[np.arange(32)])
        grad_norm = model.hidden.weight.grad.norm().item()
        if name == "penalty":
            with_penalty = grad_norm
    assert with_penalty > 10 * grad_norm  # λ=10: the penalty's gradient 2λw dominates
