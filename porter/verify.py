"""Does the port of *your* Keras model train like it? The runner behind ``l2compare verify``.

``verify(model)`` trains a copy of the Keras model with Keras's own ``fit`` and its port with
three torch recipes, from the same weights, on the same batches in the same order, and compares
every weight and buffer (state-dict key) after every step:

* ``penalty``: the Keras-exact optimizer (``torch_impl.optim``) on every parameter, and
  loss = data + ``l2_penalty(model)`` (Keras's regularization terms, in the loss);
* ``coupled``: the Keras-exact optimizer on ``param_groups(model)``, each group's L2 as coupled
  weight decay (g += 2λ·w on exactly the tensors Keras regularizes); loss = data + the terms
  weight decay cannot carry (``l1_penalty``, activity regularizers);
* ``stock``: ``torch.optim.Adam``/``SGD``/``AdamW`` with Keras's hyperparameters where torch has
  the same one (lr, betas, ε = 1e-7, momentum, AdamW's decay), penalty in the loss. Expected not
  exact for Adam (torch puts ε inside the bias correction) and SGD momentum (torch's
  b = μ·b + g; w −= lr·b is Keras's m = μ·m − lr·g; w += m only in exact arithmetic): a finding.

The copy is rebuilt in each dtype from the model's config, with the original weights cast to it.
Dropout-like layers (Dropout, SpatialDropout*, GaussianNoise, GaussianDropout, AlphaDropout) draw
different random numbers in the two frameworks, so the copy turns them off (rate or stddev 0) and
the record says so. The user's model is never changed.

Verdicts. float64: the largest |Δw| over every step and tensor, as ``parity.runner``'s
``trajectory_verdict``: "exact" at or below 1e-12, "close" at or below 1e-3, else "wrong".
float32: two float32 trajectories part by rounding, so torch is also trained a second time from
the same weights moved by one ulp (``np.nextafter``), in lockstep; the difference of those two
torch runs is torch's own envelope. Rule: "exact" when, at every step, the cross-framework
difference (max over tensors) is at most ENVELOPE_FACTOR (8) times the envelope's running maximum
(max over tensors and the steps so far); otherwise "close" when the largest difference is at most
1e-3, else "wrong". Why 8 and not 2: BatchNormalization's batch statistics are computed differently
by the two frameworks, a few ulps apart, while the envelope starts from one ulp; exact recipes on a
Conv2D→BatchNormalization model measured up to 3.1× the envelope over 20 steps, stock Adam 50× to
800×, and λ off by 1% 300× or more.

Tensors driven by rounding (``rounding_driven``): a parameter whose float64 gradient is zero up to
rounding (a bias followed by BatchNormalization) is moved by Adam in lr-sized steps of pure rounding
noise, differently by every implementation, and so is a buffer it feeds (that BatchNormalization's
moving mean). They are left out of both verdicts and named in the record with their differences.

This module imports both frameworks; the CLI imports it only inside ``l2compare verify``.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import keras
import numpy as np
import torch
from torch.nn import functional as F

from porter.codegen import generate
from porter.convert import keras_to_torch, load_state
from porter.errors import PortError

OPTIMIZERS = ("adam", "sgd", "momentum", "adamw")
RECIPES = ("penalty", "coupled", "stock")
DTYPES = ("float64", "float32")

# Keras 3's defaults (a test checks them against Keras's own): both sides get these numbers.
HYPERPARAMETERS = {
    "adam": {"learning_rate": 1e-3, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
    "adamw": {"learning_rate": 1e-3, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7, "weight_decay": 0.004},
    "sgd": {"learning_rate": 0.01},
    "momentum": {"learning_rate": 0.01, "momentum": 0.9},
}

# The thresholds of parity.runner (a floor-2 neighbour this module may not import; a test checks
# that they agree).
EXACT_FLOAT64 = 1e-12
CLOSE = 1e-3
ENVELOPE_FACTOR = 8.0   # see the module docstring
NOISE = 1e-12   # a float64 gradient this small relative to the largest is zero up to rounding

# Layers whose training-mode output is random: the parameter that turns the randomness off.
DROPOUT_LIKE = {"Dropout": "rate", "SpatialDropout1D": "rate", "SpatialDropout2D": "rate",
                "SpatialDropout3D": "rate", "GaussianDropout": "rate", "AlphaDropout": "rate",
                "GaussianNoise": "stddev"}
FREE_DIM = 8   # the length given to an input axis of unknown size (None) in random data


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


def verify(keras_model, *, data=None, optimizer: str = "adam", steps: int = 20, batch_size: int = 8,
           dtypes=DTYPES, seed: int = 0) -> list[dict]:
    """Train the model in Keras and its port in torch; one record per dtype × recipe (see the module
    docstring for the recipes and the verdict rules).

    ``data``: ``(x, y)`` (x a list for several inputs) or None for random data shaped like the model's
    input; a softmax model is trained with (sparse) categorical crossentropy, any other with MSE.
    """
    _check_arguments(optimizer, steps, batch_size, dtypes)
    generate(keras_model)   # a model the porter refuses is refused here, before any training
    if len(keras_model.outputs) != 1:
        raise VerifyError(f"model {keras_model.name!r} has {len(keras_model.outputs)} outputs; verify compares "
                          "single-output models")
    records, task, left_out = [], None, None
    for dtype in dtypes:
        torch.manual_seed(seed)
        clone, clone_notes = clone_in(keras_model, dtype)
        tm = keras_to_torch(clone)
        if task is None:
            task = make_task(clone, tm.returns_logits, data, steps, batch_size, seed)
        x = [a.astype(dtype) if np.issubdtype(a.dtype, np.floating) else a for a in task.x]
        y = task.y.astype(dtype) if np.issubdtype(task.y.dtype, np.floating) else task.y
        initial = tm.port.state()
        keys = [k for k, v in initial.items() if np.issubdtype(np.asarray(v).dtype, np.floating)]
        trainable = _trainable_keys(clone, tm.port)
        if left_out is None:
            left_out = rounding_driven(_TorchRun(tm, "penalty", optimizer, task.loss, task.x, task.y, batch_size,
                                                 keys, trainable), initial)
        keras_states, keras_losses = _keras_fit(clone, tm.port, keys, x, y, task.loss, optimizer, batch_size, dtype)
        for recipe in RECIPES:
            run = _TorchRun(tm, recipe, optimizer, task.loss, x, y, batch_size, keys, trainable)
            # A second torch run from a start one ulp away, in lockstep: torch's own envelope.
            cross, envelope, torch_losses = run.compare(initial, keras_states, envelope=True)
            records.append(_record(keras_model, clone, dtype, optimizer, recipe, batch_size, task, clone_notes,
                                   keys, cross, envelope, left_out, keras_losses, torch_losses,
                                   len(tm.port.penalties), seed))
    return records


def _check_arguments(optimizer, steps, batch_size, dtypes) -> None:
    if optimizer not in OPTIMIZERS:
        raise VerifyError(f"unknown optimizer {optimizer!r}; allowed: {', '.join(OPTIMIZERS)}")
    for what, value in (("steps", steps), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise VerifyError(f"{what} must be a whole number >= 1, got {value!r}")
    bad = [d for d in dtypes if d not in DTYPES]
    if bad or not dtypes:
        raise VerifyError(f"dtypes must be among {', '.join(DTYPES)}, got {list(dtypes)!r}")


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
    for path, var in target.items():
        value = keras.ops.convert_to_numpy(source[path])
        var.assign(value.astype(var.dtype) if np.issubdtype(value.dtype, np.floating) else value)
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


def _layers(model) -> list:
    out = []
    for layer in model.layers:
        out.extend(_layers(layer) if isinstance(layer, keras.Model) else [layer])
    return out


def _named_weights(model) -> dict:
    """{"layer/weight": variable} (a variable's ``path`` depends on the scope it was built in)."""
    return {f"{layer.name}/{i}/{w.name}": w for layer in _layers(model) for i, w in enumerate(layer.weights)}


def _trainable_keys(model, port) -> set[str]:
    """The state-dict keys that hold Keras's trainable variables (a frozen layer's are not): those
    that change when every trainable variable is moved."""
    before = port.state()
    saved = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
    try:
        for v, value in zip(model.trainable_variables, saved):
            v.assign(value + 1)
        after = port.state()
    finally:
        for v, value in zip(model.trainable_variables, saved):
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
        x = [_random_input(model, t, need, rng) for t in model.inputs]
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


def _random_input(model, tensor, n: int, rng) -> np.ndarray:
    shape = (n, *(FREE_DIM if d is None else d for d in tensor.shape[1:]))
    dtype = keras.backend.standardize_dtype(tensor.dtype)
    if "float" in dtype:
        return rng.random(shape)
    embeddings = [layer for layer in _layers(model) if type(layer) is keras.layers.Embedding]
    high = embeddings[0].input_dim if embeddings else 10
    return rng.integers(0, high, size=shape).astype(dtype)


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


# --- Keras's side -------------------------------------------------------------------------------

class _Capture(keras.callbacks.Callback):
    """The port's view of Keras's weights and buffers after every batch, and Keras's logged loss."""

    def __init__(self, read, keys):
        super().__init__()
        self.read, self.keys = read, keys
        self.states, self.losses = [], []

    def on_train_batch_end(self, batch, logs=None):
        state = self.read()
        self.states.append({k: state[k] for k in self.keys})
        self.losses.append(float((logs or {}).get("loss", np.nan)))


def keras_optimizer(name: str):
    cls = {"adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW, "sgd": keras.optimizers.SGD,
           "momentum": keras.optimizers.SGD}[name]
    return cls(**HYPERPARAMETERS[name])


def _keras_fit(model, port, keys, x, y, loss, optimizer, batch_size, dtype):
    from keras_impl.train import precision

    capture = _Capture(port.state, keys)
    with precision(dtype):  # optimizer and metric variables (lr, the loss tracker) in the model's dtype
        # jit_compile=False: XLA may reorder arithmetic; we compare against Keras's plain TF graph.
        model.compile(optimizer=keras_optimizer(optimizer), loss=loss, jit_compile=False)
        model.fit(x if len(x) > 1 else x[0], y, batch_size=batch_size, epochs=1, shuffle=False, verbose=0,
                  callbacks=[capture])
    return capture.states, capture.losses


# --- torch's side -------------------------------------------------------------------------------

def _f32(value: float) -> float:
    """A hyperparameter as Keras applies it to a variable (``ops.cast`` of a Python float: through
    float32 on TensorFlow), for torch's stock classes; torch_impl's Keras-exact ones do this themselves."""
    return float(np.float32(value))


class _TorchRun:
    """One recipe's training of the port, from any starting state."""

    def __init__(self, tm, recipe, optimizer, loss, x, y, batch_size, keys, trainable):
        self.tm, self.recipe, self.optimizer, self.loss = tm, recipe, optimizer, loss
        self.x = [torch.from_numpy(np.ascontiguousarray(a)) for a in x]
        self.y = torch.from_numpy(np.ascontiguousarray(y))
        self.batch_size, self.keys, self.trainable = batch_size, keys, trainable
        self.module = tm.source_module

    def build(self, state, dtype=None):
        model = getattr(self.module, self.tm.port.class_name)().to(dtype or getattr(torch, self.tm.port.dtype))
        load_state(model, state)
        for name, p in model.named_parameters():
            p.requires_grad_(name in self.trainable)
        return model.train()

    def data_loss(self, out, y):
        if self.loss == "mean_squared_error":
            return F.mse_loss(out, y)
        logits = out.movedim(-1, 1) if out.ndim > 2 else out   # torch wants classes on dim 1
        target = y if self.loss == "sparse_categorical_crossentropy" else (y.movedim(-1, 1) if y.ndim > 2 else y)
        return F.cross_entropy(logits, target)

    def extra_terms(self, model):
        """What the coupled recipe keeps in the loss: the terms weight decay cannot be (L1, activity)."""
        terms = []
        if hasattr(self.module, "l1_penalty"):
            terms.append(self.module.l1_penalty(model))
        activity = getattr(model, "activity_penalty", None)   # set by forward() when Keras has activity terms
        if isinstance(activity, torch.Tensor):
            terms.append(activity)
        return terms

    def make_optimizer(self, model):
        h = HYPERPARAMETERS[self.optimizer]
        params = [p for p in model.parameters() if p.requires_grad]
        if self.recipe == "stock":
            if self.optimizer in ("sgd", "momentum"):
                return torch.optim.SGD(params, lr=h["learning_rate"], momentum=_f32(h.get("momentum", 0.0)))
            kwargs = dict(lr=h["learning_rate"], betas=(_f32(h["beta_1"]), _f32(h["beta_2"])), eps=h["epsilon"])
            if self.optimizer == "adamw":
                return torch.optim.AdamW(params, weight_decay=_f32(h["weight_decay"]), **kwargs)
            return torch.optim.Adam(params, **kwargs)
        from torch_impl.optim import KerasAdam, KerasSGD

        if self.recipe == "coupled":
            groups = []
            for g in self.module.param_groups(model):
                ps = [p for p in g["params"] if p.requires_grad]
                if ps:
                    groups.append({"params": ps, "coupled_weight_decay": g["weight_decay"]})
        else:
            groups = [{"params": params}]
        if self.optimizer in ("sgd", "momentum"):
            return KerasSGD(groups, lr=h["learning_rate"], momentum=h.get("momentum", 0.0))
        return KerasAdam(groups, lr=h["learning_rate"], beta_1=h["beta_1"], beta_2=h["beta_2"],
                         epsilon=h["epsilon"], weight_decay=h.get("weight_decay"))

    def step(self, model, optimizer, batch) -> float:
        """One optimizer step on one batch; returns the loss Keras would report for it (data + penalties)."""
        optimizer.zero_grad(set_to_none=True)
        out = model(*(a[batch] for a in self.x))
        data = self.data_loss(out, self.y[batch])
        if self.recipe == "coupled":
            loss = data
            for term in self.extra_terms(model):
                loss = loss + term
            with torch.no_grad():
                reported = data + self.module.l2_penalty(model)
        else:
            loss = reported = data + self.module.l2_penalty(model)
        loss.backward()
        optimizer.step()
        return float(reported.detach())

    def compare(self, start: dict[str, np.ndarray], reference: list[dict], envelope: bool = False):
        """Train from ``start`` and compare with ``reference`` (Keras's state after every step) as it goes:
        (max |Δ| per step and tensor, the same for a run from ``start`` moved one ulp (None unless
        ``envelope``), the loss Keras would log after every step: the running mean). Nothing but the
        current weights is kept, so that a large model's trajectory is not held in memory three times."""
        models = [self.build(start)] + ([self.build(_one_ulp_up(start))] if envelope else [])
        optimizers = [self.make_optimizer(m) for m in models]
        cross, spread, losses = [], [], []
        for step, keras_state in enumerate(reference):
            batch = slice(step * self.batch_size, (step + 1) * self.batch_size)
            losses.append(self.step(models[0], optimizers[0], batch))
            state = models[0].state_dict()
            cross.append([_max_abs(keras_state[k], state[k]) for k in self.keys])
            if envelope:
                self.step(models[1], optimizers[1], batch)
                nudged = models[1].state_dict()
                spread.append([_max_abs(state[k], nudged[k]) for k in self.keys])
        shape = (len(reference), len(self.keys))
        running = list(np.cumsum(losses) / np.arange(1, len(losses) + 1))
        return (np.array(cross, np.float64).reshape(shape),
                np.array(spread, np.float64).reshape(shape) if envelope else None, running)


def _max_abs(a, b) -> float:
    a = a.detach().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    b = b.detach().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max(initial=0.0))


# --- comparing ----------------------------------------------------------------------------------

def _one_ulp_up(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every float weight and buffer moved by one unit in the last place."""
    return {k: np.nextafter(v, np.array(np.inf, dtype=v.dtype)) if np.issubdtype(v.dtype, np.floating) else v
            for k, v in state.items()}


def trajectory_verdict(worst: float) -> str:
    """float64: the largest |Δw| of the trajectory (parity.runner's rule)."""
    if not np.isfinite(worst):
        return "wrong"
    return "exact" if worst <= EXACT_FLOAT64 else "close" if worst <= CLOSE else "wrong"


def rounding_driven(run: "_TorchRun", initial: dict[str, np.ndarray]) -> dict[str, str]:
    """Tensors whose values follow rounding, not the model: {state-dict key: why}.

    A parameter whose float64 gradient (first batch, from the initial weights) is at most NOISE times
    the largest has a gradient that is zero up to rounding: the loss does not depend on it (a bias
    followed by BatchNormalization, which subtracts it again). Adam divides that noise by its own size
    and moves the tensor by lr-sized steps of rounding noise, differently in every implementation;
    a buffer fed by such a tensor (that BatchNormalization's moving mean) inherits the noise. No port
    can match those to rounding, so they are left out of the verdict and named in the record."""
    model = run.build(initial, torch.float64)
    batch = slice(0, run.batch_size)
    xs = [a[batch].to(torch.float64) if a.is_floating_point() else a[batch] for a in run.x]
    y = run.y[batch].to(torch.float64) if run.y.is_floating_point() else run.y[batch]
    params = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if not params:
        return {}
    loss = run.data_loss(model(*xs), y) + run.module.l2_penalty(model)
    grads = torch.autograd.grad(loss, [p for _, p in params], allow_unused=True)
    sizes = {name: float(g.abs().max()) for (name, _), g in zip(params, grads) if g is not None and g.numel()}
    scale = max(sizes.values(), default=0.0)
    noise = [name for name, size in sizes.items() if scale > 0 and size <= NOISE * scale]
    if not noise:
        return {}
    out = {name: f"gradient {sizes[name]:.0e} of the largest's {scale:.0e}: zero up to rounding" for name in noise}
    # Buffers one training forward pass updates differently once those tensors move.
    base, moved = run.build(initial, torch.float64), run.build(initial, torch.float64)
    with torch.no_grad():
        for name, p in moved.named_parameters():
            if name in noise:
                p.add_(0.5)
        base(*xs)
        moved(*xs)
    after, moved_after = base.state_dict(), moved.state_dict()
    for name, _ in base.named_buffers():
        a, b = after.get(name), moved_after.get(name)
        if a is not None and a.is_floating_point() and name in run.keys:
            if a.numel() and float((a - b).abs().max()) > NOISE * (1.0 + float(a.abs().max())):
                out[name] = f"updated from {', '.join(noise)}"
    return out


def envelope_verdict(cross: np.ndarray, envelope: np.ndarray) -> str:
    """float32: ``cross`` and ``envelope`` are per-step maxima over tensors. "exact" when every step's
    cross-framework difference is within ENVELOPE_FACTOR × the envelope's running maximum."""
    if not (np.isfinite(cross).all() and np.isfinite(envelope).all()):
        return "wrong"
    if (cross <= ENVELOPE_FACTOR * np.maximum.accumulate(envelope)).all():
        return "exact"
    return "close" if cross.max(initial=0.0) <= CLOSE else "wrong"


def _worst(cross: np.ndarray) -> tuple[int, int, float]:
    """(step, tensor column, |Δ|) of the largest difference; a NaN (a diverged side) counts as the largest."""
    if not cross.size:
        return 0, 0, 0.0
    step, col = np.unravel_index(int(np.where(np.isnan(cross), np.inf, cross).argmax()), cross.shape)
    return int(step), int(col), float(cross[step, col])


def _record(original, clone, dtype, optimizer, recipe, batch_size, task, clone_notes, keys, cross, envelope,
            left_out, keras_losses, torch_losses, n_penalties, seed) -> dict:
    judged = [i for i, k in enumerate(keys) if k not in left_out] or list(range(len(keys)))
    cross_j, env_j = cross[:, judged], envelope[:, judged]
    per_step = cross_j.max(axis=1, initial=0.0)
    env_steps = env_j.max(axis=1, initial=0.0)
    step, col, worst = _worst(cross_j)
    verdict = trajectory_verdict(worst) if dtype == "float64" else envelope_verdict(per_step, env_steps)
    loss_diff = float(np.max(np.abs(np.array(keras_losses) - np.array(torch_losses)))) if keras_losses else 0.0
    notes = list(clone_notes) + list(task.notes)
    left = [k for k in keys if k in left_out and len(judged) < len(keys)]
    if left:
        notes.append("left out of the verdict, values driven by rounding: "
                     + "; ".join(f"{k} ({left_out[k]})" for k in left))
    if recipe == "stock" and optimizer in ("adam", "adamw"):
        notes.append("stock torch Adam adds ε inside the bias correction (Keras: outside)")
    if recipe == "stock" and optimizer == "momentum":
        notes.append("stock torch SGD momentum is b = μ·b + g; w −= lr·b (Keras: m = μ·m − lr·g; w += m)")
    if recipe == "stock" and optimizer == "adamw":
        notes.append("stock torch AdamW decays as w·(1 − lr·wd) (Keras: w − w·wd·lr)")
    _, all_col, all_worst = _worst(cross)
    return {
        "model": original.name,
        "layers": sorted({type(layer).__name__ for layer in _layers(clone)} - {"InputLayer"}),
        "dtype": dtype, "optimizer": optimizer, "recipe": recipe, "steps": int(len(cross)),
        "batch_size": batch_size, "loss": task.loss, "data": task.source, "seed": seed,
        "regularized": n_penalties,
        "verdict": verdict, "max_dw": worst,
        "worst_tensor": keys[judged[col]] if judged else None, "worst_step": step + 1,
        "max_dw_per_step": [float(v) for v in per_step],
        "envelope_max": float(env_steps.max(initial=0.0)),
        "envelope_per_step": [float(v) for v in env_steps],
        "left_out": left, "left_out_max_dw": _worst(cross[:, [keys.index(k) for k in left]])[2] if left else None,
        "max_dw_all": all_worst, "worst_tensor_all": keys[all_col] if keys else None,
        "loss_diff": loss_diff,
        "rule": RULES[dtype], "left_out_rule": LEFT_OUT_RULE if left else None,
        "keras_version": keras.__version__, "backend": keras.backend.backend(), "torch_version": torch.__version__,
        "notes": notes,
    }


RULES = {
    "float64": f"float64: max |Δw| ≤ {EXACT_FLOAT64:g} exact, ≤ {CLOSE:g} close, else wrong",
    "float32": f"float32: exact when every step's max |Δw| ≤ {ENVELOPE_FACTOR:g}× the running max of torch's own "
               f"envelope (two torch runs one ulp apart at the start); else max ≤ {CLOSE:g} close, else wrong",
}
LEFT_OUT_RULE = ("tensors whose float64 gradient is zero up to rounding (≤ 1e-12 of the largest), and the buffers "
                 "they feed, follow rounding noise (Adam scales it to lr-sized steps): left out of both verdicts, "
                 "named, their differences shown apart")
