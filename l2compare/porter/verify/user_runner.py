"""``l2compare verify MODEL.keras --torch FILE.py:CLASS``: the user's own torch port and optimizer against
Keras's train step (what ``fit`` runs), one step at a time, judged as verify judges the generated port.

1. The user's module is matched with the Keras model's weights (``user_port``) and checked on one float64
   forward pass (``user_forward``): a port that computes another function is reported there, and a Flatten
   read in the wrong order is named; training would then compare nothing.
2. From Keras's float32 state before each step (weights, buffers, and optimizer slots where the user's class
   keeps the same ones; else step 1 only, from empty state on both sides) the user's module takes one step with
   the user's optimizer in float32 and float64, and Keras takes it in float64 too: the four differences and the
   verdicts are ``l2compare.core.onestep``'s, the same judge as verify's recipes.
3. A step that is not exact is matched against the known mistakes (``diagnose``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from l2compare.porter.codegen import generate
from l2compare.porter.verify.data import VerifyError, make_task, moved_keys
from l2compare.porter.verify.diagnose import Diagnoser
from l2compare.porter.verify.keras_side import HYPERPARAMETERS, keras_side
from l2compare.porter.verify.onestep import Measurement
from l2compare.porter.verify.records import RULES, judged_columns, onestep_part
from l2compare.porter.verify.torch_side import TorchRun, rounding_driven
from l2compare.porter.verify.user_forward import LAYOUTS, Forward, check_forward
from l2compare.porter.verify.user_port import Match, UserPortError, build_user, match_weights
from l2compare.porter.verify.user_step import UserStepper

DTYPES = ("float64", "float32")


@dataclass
class UserResult:
    """What ``verify_user_port`` found: the forward check, and (if it agreed) the verdicts and the diagnosis."""

    model: str
    torch_class: str
    optimizer: str
    keras_optimizer: str
    forward: Forward
    match: Match
    records: list = field(default_factory=list)
    diagnosis: dict | None = None
    notes: list = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return self.forward.verdict == "agrees" and all(r["verdict"] == "exact" for r in self.records)


def verify_user_port(keras_model, cls, optimizer, *, penalty: bool = False, mapping: dict | None = None,
                     decay_on: str = "all", keras_optimizer: str = "adam", steps: int = 3, batch_size: int = 8, data=None,
                     seed: int = 0) -> UserResult:
    """``cls``: the user's nn.Module class (``user_port.load_user_class``); ``optimizer``: a ``UserOptimizer``;
    ``penalty``: add Keras's regularization terms to the user's loss; ``mapping``: {Keras weight: user key};
    ``decay_on``: the tensors the optimizer's weight_decay acts on, "all" (``Optimizer(model.parameters(),
    weight_decay=...)``) or "regularized" (parameter groups: those Keras regularizes with L2)."""
    generated = generate(keras_model)   # the porter's layouts and Keras's penalties, as the port would have them
    if len(keras_model.outputs) != 1:
        raise VerifyError(f"model {keras_model.name!r} has {len(keras_model.outputs)} outputs; verify compares "
                          "single-output models")
    task = make_task(keras_model, generated.returns_logits, data, steps, batch_size, seed)
    xs = {d: [a.astype(d) if np.issubdtype(a.dtype, np.floating) else a for a in task.x] for d in DTYPES}
    ys = {d: task.y.astype(d) if np.issubdtype(task.y.dtype, np.floating) else task.y for d in DTYPES}
    sides = {d: keras_side(keras_model, d, keras_optimizer, task.loss, xs[d], ys[d], batch_size) for d in DTYPES}
    k32, k64 = sides["float32"], sides["float64"]
    match = match_weights(k64, build_user(cls, "float64"), mapping)
    problems = match.problems()
    if problems:
        raise UserPortError(f"{len(match.unmatched_keras) + len(match.unmatched_user)} tensor(s) unmatched "
                            "(paired by order and shape in torch layout; --map FILE.json pairs them by name):\n  "
                            + "\n  ".join(problems))
    result = UserResult(keras_model.name, cls.__name__, optimizer.text + (" + --penalty" if penalty else ""),
                        keras_optimizer, None, match, notes=list(task.notes))
    result.forward = check_forward(k64, build_user(cls, "float64"), match, xs["float64"], generated.returns_logits)
    if result.forward.verdict != "agrees":
        result.notes.insert(0, f"{result.forward.verdict}: {result.forward.detail}")
        return result
    forward = result.forward
    io = f"your module takes its input {LAYOUTS[forward.layout]}"
    if generated.returns_logits:
        io += "; returns " + ("logits (the softmax is in the loss)" if forward.returns_logits else "probabilities")
    result.notes.append(io)

    keys = [k for k, v in k32.port.state().items() if np.issubdtype(np.asarray(v).dtype, np.floating)]
    trainable = moved_keys(k32.port, k32.clone.trainable_variables)
    l2_keys = {p.key for p in generated.penalties if p.kind == "l2"}
    # The tensors weight_decay acts on (user_optimizer's docstring): all of them where the user says so or Keras's
    # optimizer decays them all itself.
    decayed = set(trainable) if decay_on == "all" or "weight_decay" in HYPERPARAMETERS[keras_optimizer] else l2_keys
    importable = optimizer.state_importable(keras_optimizer)
    # As verify: a tensor whose float64 gradient is zero up to rounding (a bias before BatchNormalization) follows
    # rounding noise that no port reproduces; measured on the generated port (the same function as a correct one).
    left_out = rounding_driven(TorchRun(k64.tm, "penalty", keras_optimizer, task.loss, xs["float64"], ys["float64"],
                                        batch_size, keys, trainable), k64.port.state())
    if left_out:
        result.notes.append(f"{len(left_out)} tensor(s) left out of the verdict, their values driven by rounding "
                            f"({', '.join(list(left_out)[:3])}{', …' if len(left_out) > 3 else ''})")
    slot_keys = [k for k in keys if k in trainable] if importable else []
    steppers = {d: UserStepper(cls, d, match, optimizer, penalties=generated.penalties, penalty=penalty,
                               layout=forward.layout, returns_logits=forward.returns_logits, loss=task.loss, x=xs[d],
                               y=ys[d], decayed=decayed, importable=importable, trainable=trainable)
                for d in DTYPES}
    n = len(task.x[0]) // batch_size if importable else 1
    if not importable:
        result.notes.append(f"judged at step 1 only: Keras's {keras_optimizer} state cannot be given to "
                            f"torch.optim.{optimizer.name} as it is set up, so later steps could not start from "
                            "Keras's state")
    if optimizer.decays:
        result.notes.append(f"weight_decay acts on {len(decayed)} tensor(s): "
                            + ("every trainable one (Keras's optimizer decays them all)"
                               if "weight_decay" in HYPERPARAMETERS[keras_optimizer] else
                               "every trainable one (--decay-on all)" if decayed == set(trainable)
                               else "those Keras regularizes with L2, 0 on the rest (--decay-on regularized)"))
    one, history = _steps(sides, steppers, xs, ys, keys, slot_keys, n, batch_size)
    one = one.only(judged_columns(one.tensors, left_out))
    for d in DTYPES:
        part = onestep_part(one, d)
        result.records.append({"model": keras_model.name, "dtype": d, "recipe": "your port", "steps": n,
                               "trajectory_recipe": "", "rule": RULES[d], **part})
    if result.exact:
        return result
    # Diagnosed at the first step past rounding (in either dtype), from the state that step started from.
    diverged = [r["first_divergence"]["step"] for r in result.records if r.get("first_divergence")]
    at = min(diverged) if diverged else 1
    teacher, iterations, batch, after, user64 = history[at - 1]
    user = steppers["float64"]
    eps = user.last_optimizer.param_groups[0].get("eps")
    diagnoser = Diagnoser(k64, keras_optimizer, task.loss, xs["float64"], ys["float64"], batch_size, keys, trainable,
                          generated.penalties, _decay_rates(optimizer, user, generated.penalties, trainable),
                          eps if isinstance(eps, float) else None)
    result.diagnosis = {"step": at, **diagnoser.diagnose(user64, after, one.floor[at - 1], one.tensors, teacher,
                                                          iterations, batch)}
    return result


def _steps(sides, steppers, xs, ys, keys, slot_keys, n, batch_size):
    """The one-step measurement (``onestep.Measurement``) of ``n`` steps, and per step what a diagnosis needs:
    (Keras's float32 state before it, its iteration count, the batch, Keras's float32 state after, the user's
    float64 step)."""
    k32, k64 = sides["float32"], sides["float64"]
    before = k32.snapshot()
    teacher = k32.flat(keys, slot_keys, before)
    measure = Measurement(list(teacher), ["user"])
    history = []
    for t in range(n):
        batch = slice(t * batch_size, (t + 1) * batch_size)
        iterations = k32.iterations
        k32.step([a[batch] for a in xs["float32"]], ys["float32"][batch])
        now = k32.snapshot()
        after = k32.flat(keys, slot_keys, now)
        k64.restore(before)   # Keras's float64 step from the same (float32) state
        k64.step([a[batch] for a in xs["float64"]], ys["float64"][batch])
        user32 = steppers["float32"].step(teacher, iterations, batch)
        user64 = steppers["float64"].step(teacher, iterations, batch)
        measure.add(after, k64.flat(keys, slot_keys), {"user": user32}, {"user": user64})
        history.append((teacher, iterations, batch, after, user64))
        teacher, before = after, now
    return measure.result("user"), history


def _decay_rates(optimizer, user: UserStepper, penalties, trainable) -> dict[str, float]:
    """{port key: wd} for the decoupled-decay candidate: the user's weight_decay where it decays a tensor, else 2λ
    on the tensors Keras regularizes with L2 (Keras's own weight_decay standing in for the L2)."""
    user_decay = optimizer.group_weight_decay(user.last_optimizer)
    rates = {k: user_decay.get(id(p)) or 0.0 for k, p in user.params.items()}
    lam = {}
    for p in penalties:
        if p.kind == "l2":
            lam[p.key] = lam.get(p.key, 0.0) + p.lam
    rates = {k: rates.get(k) or 2.0 * lam.get(k, 0.0) for k in trainable}
    return {k: v for k, v in rates.items() if v}

