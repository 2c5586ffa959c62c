"""verify's data: the Keras model rebuilt in one dtype, and the batches both frameworks train on.

``clone_in`` rebuilds the user's model from its config in float64 or float32 with the original's
weights cast to it and its dropout-like layers turned off (the two frameworks draw different random
masks); the user's model is never changed. ``make_task`` checks the user's ``(x, y)`` against the
model, or draws random data shaped like its input: floats in [0, 1), and for an integer input the
indices of the Embeddings it feeds (each below the smallest ``input_dim`` among them).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import keras
import numpy as np

from l2compare.porter.errors import PortError
from l2compare.porter.graph import walk

# Layers whose training-mode output is random: the parameter that turns the randomness off.
DROPOUT_LIKE = {"Dropout": "rate", "SpatialDropout1D": "rate", "SpatialDropout2D": "rate",
                "SpatialDropout3D": "rate", "GaussianDropout": "rate", "AlphaDropout": "rate",
                "GaussianNoise": "stddev"}
FREE_DIM = 8   # the length given to an input axis of unknown size (None) in random data
INDEX_RANGE = 10   # the integers of an input that feeds no Embedding: 0 to 9


class VerifyError(ValueError):
    """A request verify cannot run (data that does not fit the model, a bad argument)."""


@dataclass
class Task:
    """The data and the loss both sides train on."""

    x: list[np.ndarray]      # one array per model input, steps·batch_size samples
    y: np.ndarray
    loss: str                # "sparse_categorical_crossentropy", "categorical_crossentropy", "mean_squared_error"
    source: str              # "random" or "given"
    notes: list[str]


# --- the Keras model in one dtype --------------------------------------------------------------

def clone_in(model, dtype: str):
    """A copy of ``model`` rebuilt from its config in ``dtype`` (every layer's dtype policy, and the
    float inputs), with the original's weights cast to it and its dropout-like layers turned off.
    Returns (copy, notes)."""
    config = copy.deepcopy(model.get_config())
    turned_off: list[str] = []
    _retype(config, dtype, turned_off)
    try:
        clone = type(model).from_config(config)
    except Exception as exc:  # noqa: BLE001 - Keras's own error, in one line
        raise PortError(f"model {model.name!r} cannot be rebuilt from its config in {dtype}: "
                        f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}") from None
    source, target = _named_weights(model), _named_weights(clone)
    if set(source) != set(target):
        raise PortError(f"model {model.name!r}: its copy in {dtype} has other weights "
                        f"({sorted(set(source) ^ set(target))[:3]}); cannot compare")
    copy_weights(model, clone)
    notes = []
    if turned_off:
        notes.append(f"dropout off for the comparison ({', '.join(turned_off)}): the two frameworks draw "
                     "different random masks")
    return clone, notes


def _retype(config: dict, dtype: str, turned_off: list[str]) -> None:
    """Set every dtype in a (nested) Keras config to ``dtype``: dtype policies and float tensor
    dtypes; integer inputs stay integer. Dropout-like layers get rate/stddev 0."""
    if "dtype" in config:
        value = config["dtype"]
        if isinstance(value, dict) or (isinstance(value, str) and "float" in value):
            config["dtype"] = dtype
    for value in config.values():
        _retype_node(value, dtype, turned_off)


def _retype_node(node, dtype: str, turned_off: list[str]) -> None:
    if isinstance(node, list):
        for value in node:
            _retype_node(value, dtype, turned_off)
    elif isinstance(node, dict):
        inner = node.get("config")
        if "class_name" in node and isinstance(inner, dict):
            param = DROPOUT_LIKE.get(node["class_name"])
            if param and node.get("module") == "keras.layers" and inner.get(param):
                turned_off.append(f"{inner.get('name', node['class_name'])} {param} {inner[param]} → 0")
                inner[param] = 0.0
            _retype(inner, dtype, turned_off)
        else:
            _retype(node, dtype, turned_off)


def layers_of(model) -> list:
    """Every layer, a nested model's layers in its place."""
    out = []
    for layer in model.layers:
        out.extend(layers_of(layer) if isinstance(layer, keras.Model) else [layer])
    return out


def copy_weights(model, clone) -> None:
    """The original's weights into its copy (same layer names), cast to the copy's dtype."""
    source = _named_weights(model)
    for path, var in _named_weights(clone).items():
        value = keras.ops.convert_to_numpy(source[path])
        var.assign(value.astype(var.dtype) if np.issubdtype(value.dtype, np.floating) else value)


def _named_weights(model) -> dict:
    """{"layer/weight": variable} (a variable's ``path`` depends on the scope it was built in)."""
    return {f"{layer.name}/{i}/{w.name}": w for layer in layers_of(model) for i, w in enumerate(layer.weights)}


def moved_keys(port, variables) -> set[str]:
    """The state-dict keys that hold ``variables`` (of the model ``port`` reads): those that change
    when every one of them is moved."""
    before = port.state()
    saved = [keras.ops.convert_to_numpy(v) for v in variables]
    try:
        for v, value in zip(variables, saved):
            v.assign(value + 1)
        after = port.state()
    finally:
        for v, value in zip(variables, saved):
            v.assign(value)
    return {k for k in before if not np.array_equal(before[k], after[k])}


# --- data ---------------------------------------------------------------------------------------

def _shape_text(shape) -> str:
    return "(N, " + ", ".join("any" if d is None else str(d) for d in shape) + ")" if shape else "(N,)"


def make_task(model, returns_logits: bool, data, steps: int, batch_size: int, seed: int) -> Task:
    """The batches both sides train on: the caller's ``(x, y)`` (checked against the model), or random
    data shaped like the model's input and output."""
    rng = np.random.default_rng(seed)
    need = steps * batch_size
    notes: list[str] = []
    input_shapes = [tuple(t.shape[1:]) for t in model.inputs]
    if data is None:
        x = [_random_input(model, i, need, rng) for i in range(len(model.inputs))]
        out_shape = _output_shape(model, x)
        if returns_logits:
            y = rng.integers(0, out_shape[-1], size=(need, *out_shape[:-1])).astype(np.int64)
            loss = "sparse_categorical_crossentropy"
        else:
            y = rng.standard_normal((need, *out_shape))
            loss = "mean_squared_error"
        if any(d is None for s in input_shapes for d in s):
            notes.append(f"random data: input axes of unknown length are {FREE_DIM} long")
        return Task(x, y, loss, "random", notes)
    try:
        x, y = data
    except (TypeError, ValueError):
        raise VerifyError("data must be a pair (x, y)") from None
    x = [np.asarray(a) for a in (x if isinstance(x, (list, tuple)) else [x])]
    y = np.asarray(y)
    if len(x) != len(input_shapes):
        raise VerifyError(f"data x has {len(x)} array(s); the model {model.name!r} takes {len(input_shapes)} inputs")
    for i, (a, shape) in enumerate(zip(x, input_shapes)):
        if a.ndim != len(shape) + 1 or any(d is not None and d != n for d, n in zip(shape, a.shape[1:])):
            name = "x" if len(x) == 1 else f"x[{i}]"
            raise VerifyError(f"data {name} has shape {a.shape}; the model {model.name!r} takes {_shape_text(shape)}")
        if a.dtype.kind not in "fiub":
            raise VerifyError(f"data x has dtype {a.dtype}; expected numbers")
    for name, a in [("x" if len(x) == 1 else f"x[{i}]", a) for i, a in enumerate(x)] + [("y", y)]:
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise VerifyError(f"data {name} holds {int((~np.isfinite(a)).sum())} NaN or infinite value(s); verify "
                              "needs finite numbers")
    x = [_as_input(a, t, model) for a, t in zip(x, model.inputs)]
    n = len(x[0])
    if any(len(a) != n for a in x) or len(y) != n:
        raise VerifyError(f"data x has {n} samples and y has {len(y)}; they must match")
    if n < batch_size:
        raise VerifyError(f"data has {n} samples: fewer than one batch of {batch_size}")
    if n < need:
        notes.append(f"data holds {n} samples: {n // batch_size} steps of {batch_size} (asked for {steps})")
        need = n // batch_size * batch_size
    x, y = [a[:need] for a in x], y[:need]
    out_shape = _output_shape(model, x)
    y, loss = _check_targets(model, y, out_shape, returns_logits)
    return Task(x, y, loss, "given", notes)


def _as_input(a: np.ndarray, tensor, model) -> np.ndarray:
    """The caller's array in the input's kind: floats (cast to each dtype later), or the input's integers."""
    dtype = keras.backend.standardize_dtype(tensor.dtype)
    if "float" in dtype:
        return a.astype(np.float64)
    if a.dtype.kind == "f" and not np.array_equal(a, np.round(a)):
        raise VerifyError(f"data x holds fractions; the model {model.name!r} takes {dtype} input")
    return a.astype(dtype)


def _random_input(model, position: int, n: int, rng) -> np.ndarray:
    tensor = model.inputs[position]
    shape = (n, *(FREE_DIM if d is None else d for d in tensor.shape[1:]))
    dtype = keras.backend.standardize_dtype(tensor.dtype)
    if "float" in dtype:
        return rng.random(shape)
    return rng.integers(0, index_range(model, position), size=shape).astype(dtype)


def index_range(model, position: int) -> int:
    """How many distinct integers random data may put in input ``position``: the smallest ``input_dim``
    among the Embeddings it feeds (followed through the layers between), else INDEX_RANGE. Each input
    gets its own: a recommender's user ids index the user table, its movie ids the movie table."""
    graph = walk(model)
    reached = {id(graph.inputs[position])}
    dims = []
    for node in graph.nodes:   # in graph order: a node comes after the nodes that feed it
        if not any(id(t) in reached for t in node.inputs):
            continue
        if isinstance(node.operation, keras.layers.Embedding):
            dims.append(node.operation.input_dim)   # its output is vectors, not indices: stop here
        else:
            reached.update(id(t) for t in node.outputs)
    return min(dims, default=INDEX_RANGE)


def _output_shape(model, x: list[np.ndarray]) -> tuple:
    sample = [a[:1] for a in x]
    out = model(sample if len(sample) > 1 else sample[0], training=False)
    return tuple(keras.ops.convert_to_numpy(out).shape[1:])


def _check_targets(model, y: np.ndarray, out_shape: tuple, returns_logits: bool):
    want = _shape_text(out_shape)
    if not returns_logits:
        if tuple(y.shape[1:]) != out_shape or y.dtype.kind not in "fiub":
            raise VerifyError(f"data y has shape {y.shape}; the model {model.name!r} outputs {want} (MSE targets)")
        return y.astype(np.float64), "mean_squared_error"
    classes = out_shape[-1]
    if tuple(y.shape[1:]) == out_shape and classes > 1:   # one-hot rows or class probabilities
        return y.astype(np.float64), "categorical_crossentropy"
    labels = y[..., 0] if y.ndim == len(out_shape) + 1 and y.shape[-1] == 1 and len(out_shape) >= 1 else y
    if tuple(labels.shape[1:]) != out_shape[:-1] or labels.dtype.kind not in "fiu":
        raise VerifyError(f"data y has shape {y.shape}; the model {model.name!r} outputs {want} (a softmax): "
                          f"y must be class indices {_shape_text(out_shape[:-1])} or one-hot {want}")
    if labels.dtype.kind == "f" and not np.array_equal(labels, np.round(labels)):
        raise VerifyError("data y holds fractions; a softmax model takes class indices (or one-hot rows)")
    labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise VerifyError(f"data y holds class {labels.min() if labels.min() < 0 else labels.max()}; the model has "
                          f"{classes} classes (0 to {classes - 1})")
    return labels, "sparse_categorical_crossentropy"
