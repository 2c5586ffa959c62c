"""Keras optimizers from an OptimizerSpec (mirror: torch_impl/optim.py).

Only the hyperparameters the spec sets are passed, so that everything else is
Keras's own default (SGD lr 0.01; Adam lr 1e-3, ε 1e-7; AdamW weight decay 0.004).
"""
from __future__ import annotations

import keras

_CLASSES = {"sgd": keras.optimizers.SGD, "adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW}


def make_optimizer(spec, config: str, model: keras.Model | None = None) -> keras.optimizers.Optimizer:
    """The Keras optimizer for ``spec`` (comparisons.spec.OptimizerSpec) under Keras config ``config``.

    The optimizer's ``weight_decay`` is used when the config is ``wd`` (and by AdamW always,
    as in Keras); ``exclude_bias`` excludes ``model``'s bias variables from it.

    We exclude by ``var_list``, not ``var_names=["bias"]``: on the TensorFlow backend the
    name pattern is matched against the full variable name ("mlp_bias/hidden/kernel:0"),
    so in a model or layer whose name contains "bias" it silently excludes the kernels too
    (shown in tests/test_keras_training.py).
    """
    kwargs = {}
    if spec.lr is not None:
        kwargs["learning_rate"] = spec.lr
    if spec.name == "sgd":
        kwargs["momentum"] = spec.momentum
    else:
        kwargs.update({k: getattr(spec, k) for k in ("beta_1", "beta_2", "epsilon") if getattr(spec, k) is not None})
    if spec.weight_decay is not None and (config == "wd" or spec.name == "adamw"):
        kwargs["weight_decay"] = spec.weight_decay
    elif config == "wd" and spec.name != "adamw":
        raise ValueError("Keras config 'wd' needs an optimizer weight_decay")
    optimizer = _CLASSES[spec.name](**kwargs)
    if spec.exclude_bias:
        if model is None:
            raise ValueError("exclude_bias needs the model whose biases to exclude")
        optimizer.exclude_from_weight_decay(var_list=[v for v in model.trainable_weights if v.name == "bias"])
    return optimizer
