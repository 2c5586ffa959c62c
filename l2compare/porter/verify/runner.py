"""Does the port of *your* Keras model train like it? The runner behind ``l2compare verify``.

``verify(model)`` trains a copy of the Keras model with Keras's own ``fit`` and its port with
three torch recipes, from the same weights, on the same batches in the same order, and compares
every weight and buffer (state-dict key) after every step:

* ``penalty``: the Keras-exact optimizer (``torch_impl.optim``) on every parameter, and
  loss = data + ``l2_penalty(model)`` (Keras's regularization terms, in the loss);
* ``coupled``: the Keras-exact optimizer on ``param_groups(model)``, each group's L2 as coupled
  weight decay (g += 2λ·w on exactly the tensors Keras regularizes); loss = data + the terms
  weight decay cannot carry (``extra_penalty``: L1 and activity regularizers);
* ``stock``: ``torch.optim.Adam``/``SGD``/``AdamW`` with Keras's hyperparameters where torch has
  the same one (lr, betas, ε = 1e-7, momentum, AdamW's decay), penalty in the loss. Expected not
  exact for Adam (torch puts ε inside the bias correction) and SGD momentum (torch's
  b = μ·b + g; w −= lr·b is Keras's m = μ·m − lr·g; w += m only in exact arithmetic): a finding.

The copy is rebuilt in each dtype from the model's config, with the original weights cast to it
(``l2compare.porter.verify.data``). Dropout-like layers (Dropout, SpatialDropout*, GaussianNoise,
GaussianDropout, AlphaDropout) draw different random numbers in the two frameworks, so the copy
turns them off (rate or stddev 0) and the record says so. The user's model is never changed.

Verdicts. float64: the largest |Δw| over every step and tensor, as ``l2compare.parity.runner``'s
``trajectory_verdict``: "exact" at or below 1e-12, "close" at or below 1e-3, else "wrong".
float32: two float32 trajectories part by rounding, so torch is also trained a second time from
the same weights moved by one ulp (``np.nextafter``), in lockstep; the difference of those two
torch runs is torch's own envelope. Rule: "exact" when, at every step, the cross-framework
difference (max over tensors) is at most ENVELOPE_FACTOR (8) times the envelope's running maximum
(max over tensors and the steps so far); otherwise "close" when the largest difference is at most
1e-3, else "wrong". Why 8 and not 2: BatchNormalization's batch statistics are computed differently
by the two frameworks, a few ulps apart, while the envelope starts from one ulp; exact recipes on a
Conv2D→BatchNormalization model measured up to 3.1× the envelope over 20 steps, stock Adam 50× to
800×, and λ off by 1% 300× or more. A record that is not exact names the tensors that part first
(``first_divergence``): where the difference starts, not where it ends up largest.

Tensors driven by rounding (``rounding_driven``): a parameter whose float64 gradient is zero up to
rounding (a bias followed by BatchNormalization) is moved by Adam in lr-sized steps of pure rounding
noise, differently by every implementation, and so is a buffer it feeds (that BatchNormalization's
moving mean). They are left out of both verdicts and named in the record with their differences.

Sparse embeddings (``l2compare.porter.verify.keras_side``): Keras's Adam and AdamW on TensorFlow square an
Embedding's sparse gradient per lookup (v gets Σ gᵢ², not (Σ gᵢ)²) when no embeddings_regularizer
makes it dense. torch's dense Adam cannot follow that, and it is not emulated: every record of such
a run names those tensors (``sparse_adam``) and says why they are not exact.

This module imports both frameworks; the CLI imports it only inside ``l2compare verify``.
"""
from __future__ import annotations

import keras
import numpy as np
import torch

from l2compare.core.verdicts import CLOSE, EXACT_FLOAT64, trajectory_verdict
from l2compare.porter.codegen import generate
from l2compare.porter.convert import keras_to_torch
from l2compare.porter.verify.data import (DROPOUT_LIKE, FREE_DIM, INDEX_RANGE, Task, VerifyError, clone_in,
    index_range, layers_of, make_task, moved_keys)
from l2compare.porter.verify.keras_side import (HYPERPARAMETERS, SPARSE_SQUARING, keras_fit, keras_optimizer,
    sparse_embeddings, sparse_note)
from l2compare.porter.verify.torch_side import NOISE, RECIPES, TorchRun, rounding_driven

__all__ = ["verify", "VerifyError", "Task", "clone_in", "make_task", "index_range", "rounding_driven", "TorchRun",
           "keras_optimizer", "trajectory_verdict", "envelope_verdict", "OPTIMIZERS", "RECIPES", "DTYPES",
           "HYPERPARAMETERS", "EXACT_FLOAT64", "CLOSE", "ENVELOPE_FACTOR", "NOISE", "DROPOUT_LIKE", "FREE_DIM",
           "INDEX_RANGE"]

OPTIMIZERS = ("adam", "sgd", "momentum", "adamw")
DTYPES = ("float64", "float32")

# The thresholds of l2compare.parity.runner (a floor-2 neighbour this module may not import; a test checks
# that they agree).
ENVELOPE_FACTOR = 8.0   # see the module docstring


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
        trainable = moved_keys(tm.port, clone.trainable_variables)
        if left_out is None:
            left_out = rounding_driven(TorchRun(tm, "penalty", optimizer, task.loss, task.x, task.y, batch_size,
                                                keys, trainable), initial)
        run_info = _run_info(keras_model, clone, tm.port, keys, dtype, optimizer, batch_size, task, clone_notes,
                             seed)
        keras_states, keras_losses = keras_fit(clone, tm.port, keys, x, y, task.loss, optimizer, batch_size, dtype)
        for recipe in RECIPES:
            run = TorchRun(tm, recipe, optimizer, task.loss, x, y, batch_size, keys, trainable)
            # A second torch run from a start one ulp away, in lockstep: torch's own envelope.
            cross, envelope, torch_losses = run.compare(initial, keras_states, envelope=True)
            records.append(_record(run_info, recipe, keys, cross, envelope, left_out, keras_losses, torch_losses))
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


def _run_info(original, clone, port, keys, dtype, optimizer, batch_size, task, clone_notes, seed) -> dict:
    """What every record of one dtype's run shares: the setting, and its notes."""
    notes = list(clone_notes) + list(task.notes)
    sparse = []
    if optimizer in SPARSE_SQUARING:
        embeddings = [v for layer in sparse_embeddings(clone) for v in layer.trainable_variables]
        sparse = [k for k in keys if k in moved_keys(port, embeddings)] if embeddings else []
        if sparse:
            notes.append(sparse_note(sparse))
    return {
        "model": original.name,
        "layers": sorted({type(layer).__name__ for layer in layers_of(clone)} - {"InputLayer"}),
        "dtype": dtype, "optimizer": optimizer, "batch_size": batch_size, "loss": task.loss, "data": task.source,
        "seed": seed, "regularized": len(port.penalties), "notes": notes, "sparse_adam": sparse,
    }


# --- verdicts -----------------------------------------------------------------------------------

def envelope_verdict(cross: np.ndarray, envelope: np.ndarray) -> str:
    """float32: ``cross`` and ``envelope`` are per-step maxima over tensors. "exact" when every step's
    cross-framework difference is within ENVELOPE_FACTOR × the envelope's running maximum."""
    if not (np.isfinite(cross).all() and np.isfinite(envelope).all()):
        return "wrong"
    if (cross <= ENVELOPE_FACTOR * np.maximum.accumulate(envelope)).all():
        return "exact"
    return "close" if cross.max(initial=0.0) <= CLOSE else "wrong"


def _allowed(dtype: str, env_steps: np.ndarray) -> np.ndarray:
    """Per step, the largest |Δw| a tensor may have and still be exact (the rules above)."""
    if dtype == "float64":
        return np.full(len(env_steps), EXACT_FLOAT64)
    return ENVELOPE_FACTOR * np.maximum.accumulate(env_steps) if len(env_steps) else env_steps


def _first_divergence(cross: np.ndarray, allowed: np.ndarray, keys: list[str]) -> dict | None:
    """The first step where a tensor is past ``allowed`` (a NaN is), and every tensor that is then."""
    past = ~(cross <= allowed[:, None])
    if not past.any():
        return None
    step = int(past.any(axis=1).argmax())
    return {"step": step + 1, "tensors": [k for k, bad in zip(keys, past[step]) if bad]}


def _worst(cross: np.ndarray) -> tuple[int, int, float]:
    """(step, tensor column, |Δ|) of the largest difference; a NaN (a diverged side) counts as the largest."""
    if not cross.size:
        return 0, 0, 0.0
    step, col = np.unravel_index(int(np.where(np.isnan(cross), np.inf, cross).argmax()), cross.shape)
    return int(step), int(col), float(cross[step, col])


def _record(info, recipe, keys, cross, envelope, left_out, keras_losses, torch_losses) -> dict:
    dtype, optimizer = info["dtype"], info["optimizer"]
    judged = [i for i, k in enumerate(keys) if k not in left_out] or list(range(len(keys)))
    cross_j, env_j = cross[:, judged], envelope[:, judged]
    per_step = cross_j.max(axis=1, initial=0.0)
    env_steps = env_j.max(axis=1, initial=0.0)
    step, col, worst = _worst(cross_j)
    verdict = trajectory_verdict(worst) if dtype == "float64" else envelope_verdict(per_step, env_steps)
    loss_diff = float(np.max(np.abs(np.array(keras_losses) - np.array(torch_losses)))) if keras_losses else 0.0
    notes = list(info["notes"])
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
        **{k: info[k] for k in ("model", "layers", "dtype", "optimizer")},
        "recipe": recipe, "steps": int(len(cross)),
        **{k: info[k] for k in ("batch_size", "loss", "data", "seed", "regularized")},
        "verdict": verdict, "max_dw": worst,
        "worst_tensor": keys[judged[col]] if judged else None, "worst_step": step + 1,
        "first_divergence": _first_divergence(cross_j, _allowed(dtype, env_steps), [keys[i] for i in judged]),
        "max_dw_per_step": [float(v) for v in per_step],
        "envelope_max": float(env_steps.max(initial=0.0)),
        "envelope_per_step": [float(v) for v in env_steps],
        "left_out": left, "left_out_max_dw": _worst(cross[:, [keys.index(k) for k in left]])[2] if left else None,
        "max_dw_all": all_worst, "worst_tensor_all": keys[all_col] if keys else None,
        "sparse_adam": info["sparse_adam"],
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
