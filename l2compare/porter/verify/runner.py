"""Does the port of *your* Keras model train like it? The runner behind ``l2compare verify``.

``verify(model)`` trains a copy of the Keras model with Keras's own train step (the function ``fit``
runs) and its port with up to three torch recipes, on the same batches in the same order:

* ``penalty``: the Keras-exact optimizer (``torch_impl.optim``) on every parameter, and
  loss = data + ``l2_penalty(model)`` (Keras's regularization terms, in the loss);
* ``coupled``: the Keras-exact optimizer on ``param_groups(model)``, each group's L2 as coupled
  weight decay (g += 2λ·w on exactly the tensors Keras regularizes); loss = data + the terms
  weight decay cannot carry (``extra_penalty``: L1 and activity regularizers);
* ``stock``: ``torch.optim.Adam``/``SGD``/``AdamW`` with Keras's hyperparameters where torch has
  the same one (lr, betas, ε = 1e-7, momentum, AdamW's decay), penalty in the loss. Expected not
  exact for Adam (torch puts ε inside the bias correction): a finding.

The verdict is one step at a time (``l2compare.porter.verify.onestep``, the parity grid's judge in
``l2compare.core.onestep``): before every step torch gets Keras's weights, buffers and optimizer state
and takes one step on the same batch; each tensor and slot must land within both frameworks' own
rounding of that step, measured in the same run (float32 against float64 on each side), in float32
and in float64. A trajectory cannot decide it: a deep net with BatchNormalization trained on random
data is chaotic, and torch against itself from a start one ulp away drifts 0.5 in float32 within five
steps of MobileNetV2. The free-running trajectories and that envelope stay in the record as information.
The one-step floors need both precisions whatever ``dtypes`` asks for; ``dtypes`` picks the verdict
rows and the trajectories run, ``recipes`` the torch recipes.

The copy is rebuilt in each dtype from the model's config, with the original weights cast to it
(``l2compare.porter.verify.data``). Dropout-like layers draw different random numbers in the two
frameworks, so the copy turns them off (rate or stddev 0) and the record says so. The user's model is
never changed. Tensors driven by rounding (``rounding_driven``: a parameter whose float64 gradient is
zero up to rounding, such as a bias followed by BatchNormalization, and the buffers it feeds) are left
out of the verdicts and named in the record with their differences. Sparse embeddings: see
``l2compare.porter.verify.keras_side``.

This module imports both frameworks; the CLI imports it only inside ``l2compare verify``.
"""
from __future__ import annotations

import sys

import numpy as np
import torch

from l2compare.core.verdicts import CLOSE, EXACT_FLOAT64, one_ulp_up, trajectory_verdict
from l2compare.porter.codegen import generate
from l2compare.porter.verify.data import (DROPOUT_LIKE, FREE_DIM, INDEX_RANGE, Task, VerifyError, clone_in,
    index_range, layers_of, make_task, moved_keys)
from l2compare.porter.verify.keras_side import (HYPERPARAMETERS, SPARSE_SQUARING, keras_optimizer, keras_side,
    sparse_embeddings, sparse_note)
from l2compare.porter.verify.onestep import Measurement, TorchStepper
from l2compare.porter.verify.records import judged_columns, record
from l2compare.porter.verify.torch_side import NOISE, RECIPES, TorchRun, rounding_driven

__all__ = ["verify", "VerifyError", "Task", "clone_in", "make_task", "index_range", "rounding_driven", "TorchRun",
           "keras_optimizer", "trajectory_verdict", "OPTIMIZERS", "RECIPES", "DTYPES", "HYPERPARAMETERS",
           "EXACT_FLOAT64", "CLOSE", "NOISE", "DROPOUT_LIKE", "FREE_DIM", "INDEX_RANGE"]

OPTIMIZERS = ("adam", "sgd", "momentum", "adamw")
DTYPES = ("float64", "float32")


def verify(keras_model, *, data=None, optimizer: str = "adam", steps: int = 20, batch_size: int = 8,
           dtypes=DTYPES, recipes=RECIPES, seed: int = 0, progress: bool = False, hook=None) -> list[dict]:
    """Train the model in Keras and its port in torch; one record per dtype × recipe (see the module
    docstring for the recipes and the verdict rules).

    ``data``: ``(x, y)`` (x a list for several inputs) or None for random data shaped like the model's
    input; a softmax model is trained with (sparse) categorical crossentropy, any other with MSE.
    ``progress``: a bar per phase on stderr. ``hook(run, model, optimizer)``: called on every torch module
    the recipes build (optimizer None) and every optimizer (tests inject port mistakes through it).
    """
    _check_arguments(optimizer, steps, batch_size, dtypes, recipes)
    generated = generate(keras_model)   # a model the porter refuses is refused here, before any training
    if len(keras_model.outputs) != 1:
        raise VerifyError(f"model {keras_model.name!r} has {len(keras_model.outputs)} outputs; verify compares "
                          "single-output models")
    dtypes = [d for d in DTYPES if d in dtypes]
    recipes = [r for r in RECIPES if r in recipes]
    # The data is checked against the user's model (an inference call changes nothing) before any bar starts.
    task = make_task(keras_model, generated.returns_logits, data, steps, batch_size, seed)
    bar = _Bars(progress)
    torch.manual_seed(seed)
    xs = {d: [a.astype(d) if np.issubdtype(a.dtype, np.floating) else a for a in task.x] for d in DTYPES}
    ys = {d: task.y.astype(d) if np.issubdtype(task.y.dtype, np.floating) else task.y for d in DTYPES}
    with bar.phase("Keras: the copies, their train step traced (float32, float64)", 2) as tick:
        sides = {}
        for d in ("float32", "float64"):
            sides[d] = keras_side(keras_model, d, optimizer, task.loss, xs[d], ys[d], batch_size)
            tick()
    k32, k64 = sides["float32"], sides["float64"]
    initial = {d: sides[d].port.state() for d in DTYPES}
    keys = [k for k, v in initial["float32"].items() if np.issubdtype(np.asarray(v).dtype, np.floating)]
    trainable = moved_keys(k32.port, k32.clone.trainable_variables)
    slot_keys = [k for k in keys if k in trainable]
    runs = {d: {r: TorchRun(sides[d].tm, r, optimizer, task.loss, xs[d], ys[d], batch_size, keys, trainable, hook)
                for r in recipes} for d in DTYPES}
    with bar.phase("tensors driven by rounding (float64 gradient)", 1) as tick:
        left_out = rounding_driven(runs["float64"][recipes[0]], initial["float64"])
        tick()
    steppers = {d: TorchStepper(runs[d], initial[d], getattr(torch, d)) for d in DTYPES}
    # Information, not the verdict: the first recipe trained freely beside Keras, and torch against itself from
    # a start one ulp away (the envelope: what the model's chaos alone does to a trajectory).
    lead = recipes[0]
    free = {d: runs[d][lead].trajectory(initial[d]) for d in dtypes}
    nudged = {d: runs[d][lead].trajectory(one_ulp_up(initial[d])) for d in dtypes}
    keras64_free, before = k64.snapshot(), k32.snapshot()
    teacher = k32.flat(keys, slot_keys, before)
    measure = Measurement(list(teacher), recipes)
    traj = {d: [] for d in dtypes}
    envelope = {d: [] for d in dtypes}
    losses = {(side, d): [] for d in dtypes for side in ("keras", "torch")}
    n = len(task.x[0]) // batch_size
    with bar.phase("steps: Keras, then torch from Keras's state, both dtypes", n) as tick:
        for t in range(n):
            batch = slice(t * batch_size, (t + 1) * batch_size)
            iterations = k32.iterations
            loss32 = k32.step([a[batch] for a in xs["float32"]], ys["float32"][batch])
            now = k32.snapshot()
            after = k32.flat(keys, slot_keys, now)
            k64.restore(before)
            k64.step([a[batch] for a in xs["float64"]], ys["float64"][batch])
            measure.add(after, k64.flat(keys, slot_keys), steppers["float32"].step(teacher, iterations, batch),
                        steppers["float64"].step(teacher, iterations, batch))
            teacher, before = after, now
            # The free-running trajectories, for the record.
            for d in dtypes:
                if d == "float32":
                    keras_now, loss = after, loss32
                else:
                    k64.restore(keras64_free)
                    loss = k64.step([a[batch] for a in xs[d]], ys[d][batch])
                    keras64_free = k64.snapshot()
                    keras_now = k64.flat(keys, [], keras64_free)
                losses["keras", d].append(loss)
                (model, opt), (other, other_opt) = free[d], nudged[d]
                losses["torch", d].append(runs[d][lead].step(model, opt, batch))
                traj[d].append(_max_abs(keras_now, model.state_dict(), keys))
                runs[d][lead].step(other, other_opt, batch)
                envelope[d].append(_max_abs(model.state_dict(), other.state_dict(), keys))
            tick()
    records = []
    judged = judged_columns(measure.tensors, left_out)
    for d in dtypes:
        info = _run_info(keras_model, sides[d], keys, d, optimizer, batch_size, task, seed)
        for r in recipes:
            free_run = (lead, np.array(traj[d]), np.array(envelope[d]), _running(losses["keras", d]),
                        _running(losses["torch", d]))
            records.append(record(info, r, measure.result(r), judged, keys, free_run, left_out))
    return records


def _max_abs(a: dict, b: dict, keys: list[str]) -> list[float]:
    def arr(v):
        return v.detach().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)

    return [float(np.abs(arr(a[k]).astype(np.float64) - arr(b[k]).astype(np.float64)).max(initial=0.0)) for k in keys]


def _running(losses: list[float]) -> list[float]:
    """The loss Keras logs after every step of an epoch: the running mean of the batches' losses."""
    return list(np.cumsum(losses) / np.arange(1, len(losses) + 1)) if losses else []


class _Bars:
    """A tqdm bar per phase on stderr (or nothing)."""

    def __init__(self, show: bool):
        self.show = show

    def phase(self, what: str, total: int):
        import contextlib

        @contextlib.contextmanager
        def bar():
            if not self.show:
                yield lambda: None
                return
            from tqdm import tqdm

            with tqdm(total=total, desc=what, file=sys.stderr, leave=False, dynamic_ncols=True) as b:
                yield lambda: b.update(1)

        return bar()


def _check_arguments(optimizer, steps, batch_size, dtypes, recipes) -> None:
    if optimizer not in OPTIMIZERS:
        raise VerifyError(f"unknown optimizer {optimizer!r}; allowed: {', '.join(OPTIMIZERS)}")
    for what, value in (("steps", steps), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise VerifyError(f"{what} must be a whole number >= 1, got {value!r}")
    bad = [d for d in dtypes if d not in DTYPES]
    if bad or not dtypes:
        raise VerifyError(f"dtypes must be among {', '.join(DTYPES)}, got {list(dtypes)!r}")
    bad = [r for r in recipes if r not in RECIPES]
    if bad or not recipes:
        raise VerifyError(f"recipes must be among {', '.join(RECIPES)}, got {list(recipes)!r}")


def _run_info(original, side, keys, dtype, optimizer, batch_size, task, seed) -> dict:
    """What every record of one dtype's run shares: the setting, and its notes."""
    clone, port = side.clone, side.port
    notes = list(side.notes) + list(task.notes)
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
