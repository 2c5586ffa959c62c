"""Keras optimizers from an OptimizerSpec (mirror: torch_impl/optim.py).

Only the hyperparameters the spec sets are passed, so that everything else is
Keras's own default (SGD lr 0.01; Adam lr 1e-3, ε 1e-7; AdamW weight decay 0.004).
"""
from __future__ import annotations

import keras
import numpy as np

_CLASSES = {"sgd": keras.optimizers.SGD, "adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW}


def make_optimizer(model: keras.Model, spec, regularization: str) -> keras.optimizers.Optimizer:
    """The Keras optimizer for ``spec`` (l2compare.core.spec.OptimizerSpec) under Keras config ``regularization``.

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
    if spec.weight_decay is not None and (regularization == "wd" or spec.name == "adamw"):
        kwargs["weight_decay"] = spec.weight_decay
    elif regularization == "wd" and spec.name != "adamw":
        raise ValueError("Keras config 'wd' needs an optimizer weight_decay")
    optimizer = _CLASSES[spec.name](**kwargs)
    if spec.exclude_bias:
        optimizer.exclude_from_weight_decay(var_list=[v for v in model.trainable_weights if v.name == "bias"])
    return optimizer


# The optimizer's per-variable slots, by Keras's own names (the canonical state's names too).
_SLOTS = {"sgd": {"momentum": "momentums"}, "adam": {"momentum": "_momentums", "velocity": "_velocities"}}


def _slot_lists(optimizer) -> dict[str, list]:
    kind = "sgd" if isinstance(optimizer, keras.optimizers.SGD) else "adam"  # AdamW is an Adam
    return {slot: getattr(optimizer, attr) for slot, attr in _SLOTS[kind].items() if getattr(optimizer, attr, None)}


def export_state(optimizer, model: keras.Model) -> dict:
    """The optimizer's state in canonical form: {"iterations": t, "slots": {"hidden/kernel": {"momentum": m, ...}}}.

    Slots are in Keras layout (the weights' own), named as Keras names them: Adam's
    ``momentum`` (m) and ``velocity`` (v), SGD's ``momentum`` (Keras's m = μ·m − lr·g).
    """
    from keras_impl.weights import named_variables

    slots: dict[str, dict] = {}
    if optimizer.built:
        lists = _slot_lists(optimizer)
        for name, var in named_variables(model):
            if var.trainable:
                index = optimizer._get_variable_index(var)
                slots[name] = {slot: np.array(keras.ops.convert_to_numpy(values[index])) for slot, values in lists.items()}
    return {"iterations": int(keras.ops.convert_to_numpy(optimizer.iterations)), "slots": slots}


def import_state(optimizer, model: keras.Model, state: dict) -> None:
    """Set the optimizer to a canonical ``state`` (as ``export_state`` gives), cast to its dtype.
    A slot the state lacks is zero (a fresh optimizer's), so a used optimizer can be reset too."""
    from keras_impl.weights import named_variables

    optimizer.build(model.trainable_variables)
    lists = _slot_lists(optimizer)
    for name, var in named_variables(model):
        if var.trainable:
            index = optimizer._get_variable_index(var)
            slots = state["slots"].get(name, {})
            for slot, values in lists.items():
                target = values[index]
                value = slots[slot] if slot in slots else np.zeros(target.shape)
                target.assign(np.asarray(value).astype(target.dtype))
    optimizer.iterations.assign(state["iterations"])
