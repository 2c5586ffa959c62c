"""Facts about Keras and PyTorch that a port must respect, asserted against the installed versions.

PORTING.md links here: if an upgrade changes one of these, the test fails and the
porting advice must be revisited.
"""
import math

import keras
import numpy as np
import torch

import keras_impl
import torch_impl
from keras_impl import train
from keras_impl.worker import defaults as keras_defaults
from torch_impl.worker import defaults as torch_defaults


def _data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 784)).astype("float32"), rng.integers(0, 10, n)


def test_default_hyperparameters_differ():
    k, t = keras_defaults(), torch_defaults()
    assert (k["sgd_lr"], t["sgd_lr"]) == (0.01, 1e-3)  # SGD: 10× apart
    assert k["adam_lr"] == t["adam_lr"] == 1e-3
    assert (k["adam_epsilon"], t["adam_epsilon"]) == (1e-7, 1e-8)
    assert (k["adamw_weight_decay"], t["adamw_weight_decay"]) == (0.004, 0.01)


def test_initializers_differ():
    """Keras: glorot_uniform kernels, zero biases. torch: U(±1/√fan_in) for weights and biases."""
    keras.utils.set_random_seed(0)
    torch.manual_seed(0)
    km, tm = keras_impl.build_model("mlp"), torch_impl.build_model("mlp")
    kernel, bias = km.get_layer("hidden").kernel.numpy(), km.get_layer("hidden").bias.numpy()
    glorot = math.sqrt(6 / (784 + 128))
    assert 0.95 * glorot < np.abs(kernel).max() <= glorot
    assert not bias.any()
    weight = tm.hidden.weight.detach().numpy()
    assert 0.95 / math.sqrt(784) < np.abs(weight).max() <= 1 / math.sqrt(784)
    assert np.abs(tm.hidden.bias.detach().numpy()).max() > 0
    # Consequence: Keras's first kernel starts about 2.3× larger in norm (√(6/912) / (1/√784)).
    ratio = np.linalg.norm(kernel) / np.linalg.norm(weight)
    assert 2.0 < ratio < 2.6, ratio


def test_var_names_bias_also_excludes_kernels_of_a_model_named_bias():
    """Known TensorFlow-backend behaviour, asserted: exclude_from_weight_decay(var_names=["bias"])
    matches the full TF variable name ("mlp_bias/hidden/kernel:0"), so in a model named
    "mlp_bias" the kernels are not decayed either. keras_impl excludes by var_list instead."""
    x, y = _data(32)

    def kernel_after_one_step(exclude):
        keras.utils.set_random_seed(0)
        model = keras_impl.build_model("mlp_bias", l2=0)
        opt = keras.optimizers.SGD(learning_rate=0.5, weight_decay=0.5)
        exclude(opt, model)
        before = model.get_layer("hidden").kernel.numpy().copy()
        train.fit(model, opt, x, y, batch_size=32, order=[np.arange(32)])
        return before, model.get_layer("hidden").kernel.numpy()

    # Only the decay shows in the kernel's relative change when gradients are this small
    # compared with w·wd·lr; compare the two exclusion styles directly.
    by_name = kernel_after_one_step(lambda opt, m: opt.exclude_from_weight_decay(var_names=["bias"]))
    by_list = kernel_after_one_step(
        lambda opt, m: opt.exclude_from_weight_decay(var_list=[v for v in m.trainable_weights if v.name == "bias"]))
    assert np.array_equal(by_name[0], by_list[0])
    shrink_by_name = np.abs(by_name[1]).sum() / np.abs(by_name[0]).sum()
    shrink_by_list = np.abs(by_list[1]).sum() / np.abs(by_list[0]).sum()
    assert shrink_by_list < 0.8 < shrink_by_name  # decayed by 1 − 0.25 only when excluded by list


