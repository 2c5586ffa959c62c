"""keras_impl training: the caller's batch order, history split, step capture, and a TF quirk."""
import keras
import numpy as np
import pytest

import keras_impl
from l2compare.core.spec import OptimizerSpec
from keras_impl import l2 as keras_l2
from keras_impl import optim, train


def _data(n=70, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 784)).astype("float32"), rng.integers(0, 10, n)


def test_history_splits_loss_into_data_loss_and_penalty():
    model = keras_impl.build_model("mlp", l2=0.01)
    train.compile_model(model, keras.optimizers.SGD(learning_rate=0.0))  # weights frozen: penalty constant
    x, y = _data()
    result = train.fit(model, model.optimizer, x, y, batch_size=32, order=[np.arange(70)], x_test=x, y_test=y)
    row = result.history[0]
    assert row["loss"] == pytest.approx(row["data_loss"] + row["penalty"], abs=1e-6)
    assert row["penalty"] == pytest.approx(float(keras_l2.penalty(model)), rel=1e-5)
    assert 0 <= row["test_accuracy"] <= 1 and row["epoch"] == 1


def test_capture_every_step_including_the_partial_batch():
    model = keras_impl.build_model("mlp", l2=0.01)
    train.compile_model(model, keras.optimizers.SGD(learning_rate=0.1))
    x, y = _data()
    order = [np.random.default_rng(e).permutation(70) for e in range(2)]
    result = train.fit(model, model.optimizer, x, y, batch_size=32, order=order, capture_steps=True)
    assert len(result.steps) == 2 * 3  # 32 + 32 + 6 per epoch
    assert not np.array_equal(result.steps[0]["hidden/kernel"], result.steps[1]["hidden/kernel"])
    np.testing.assert_array_equal(result.steps[-1]["out/bias"], model.get_layer("out").bias.numpy())


def test_batch_order_is_the_callers():
    """Two runs with the same order agree exactly; a different order gives different weights."""
    x, y = _data()
    finals = []
    for order in ([np.arange(70)], [np.arange(70)], [np.arange(70)[::-1].copy()]):
        keras.utils.set_random_seed(0)
        model = keras_impl.build_model("mlp", l2=0.01)
        train.compile_model(model, keras.optimizers.SGD(learning_rate=0.1))
        train.fit(model, model.optimizer, x, y, batch_size=32, order=order)
        finals.append(model.get_layer("hidden").kernel.numpy())
    np.testing.assert_array_equal(finals[0], finals[1])
    assert not np.array_equal(finals[0], finals[2])


def test_make_optimizer_passes_only_what_the_spec_sets():
    model = keras_impl.build_model("mlp")
    adam = optim.make_optimizer(model, OptimizerSpec("adam"), "l2")
    assert adam.epsilon == 1e-7 and adam.weight_decay is None
    wd = optim.make_optimizer(model, OptimizerSpec("sgd", momentum=0.9, weight_decay=0.1), "wd")
    assert wd.weight_decay == pytest.approx(0.1) and wd.momentum == pytest.approx(0.9)
    assert float(wd.learning_rate) == pytest.approx(0.01)
    adamw = optim.make_optimizer(model, OptimizerSpec("adamw"), "none")
    assert adamw.weight_decay == pytest.approx(0.004)
    with pytest.raises(ValueError, match="'wd' needs an optimizer weight_decay"):
        optim.make_optimizer(model, OptimizerSpec("adam"), "wd")
