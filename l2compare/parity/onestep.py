"""Teacher-forced one-step parity: the float32 test that does not depend on the machine.

Two correct float32 implementations agree to ~1e-7 per step, but a trajectory compares
them only until a discrete decision ties (a ReLU input or two MaxPool candidates within
rounding of each other): rounding then picks a different side in each framework, and
training amplifies it, differently on every CPU, thread count and kernel set. So we
compare one step at a time. Before every step t, torch is given Keras's weights and
optimizer state after step t−1 (Adam's moments and step count, SGD's momentum); it takes
one step on the same batch, and we compare the weights and the optimizer's new state (a recipe
could take Keras's step yet keep a different state, as decoupled decay does with momentum), per
tensor and per slot, relative to its max |·|:

    cross        |torch32 − keras32|     what the port changes, plus rounding
    torch floor  |torch32 − torch64|     torch's own float32 rounding of this step
    keras floor  |keras32 − keras64|     Keras's own float32 rounding of this step
    cross64      |torch64 − keras64|     the two computations, without float32 rounding

(the float64 steps start from the same float32 state, cast up). By the triangle
inequality, cross ≤ torch floor + keras floor + cross64, on any machine. An exact recipe
has cross64 at float64 rounding (≤ 1e-14 measured: the torch side rounds hyperparameters
through float32 where TensorFlow does), so its cross never leaves the floor; a wrong one adds
its own error at every step. The verdict (``l2compare.parity.runner``) is built on that.

Each step also records the smallest float64 decision margin of its forward pass (``margins``):
the steps where the floors jump are the steps where a decision ties.
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np

# The judge (OneStep, the verdict rules, TIE) is framework-free and shared with ``verify``: l2compare.core.onestep.
from l2compare.core.onestep import TIE, OneStep, flat as _flat, relative as _relative  # noqa: E402,F401


def step_batches(order, batch_size: int, steps: int) -> list[np.ndarray]:
    """The sample indices of each step, in training order (each epoch ends in its partial batch)."""
    batches = [perm[i:i + batch_size] for perm in order for i in range(0, len(perm), batch_size)]
    return batches[:steps]


def _before(traj, t: int):
    """Keras's (weights, optimizer state) before step t (0-based)."""
    if t == 0:
        return traj.initial, {"iterations": 0, "slots": {}}
    return traj.steps[t - 1], traj.states[t - 1]


def _batches(traj, batch_size: int) -> list[np.ndarray]:
    return step_batches(traj.order, batch_size, len(traj.steps))


@functools.lru_cache(maxsize=4)
def _keras64(spec):
    """A float64 Keras model and optimizer for ``spec``, built and traced once and reused by every
    Keras side that differs only in seed and data (each step sets all weights and all state)."""
    from keras_impl.worker import Run

    run = Run()
    with run.precision("float64"):
        return run.prepare(spec)


@functools.lru_cache(maxsize=4)
def keras_float64_steps(keras_case) -> list[dict]:
    """Keras's own float64 step from each of its float32 states (cached per Keras trajectory)."""
    from keras_impl import optim, train
    from keras_impl.weights import export_weights, import_weights

    from l2compare.parity.cases import parity_data
    from l2compare.parity.sides import keras_spec, keras_trajectory

    traj = keras_trajectory(keras_case)
    x, y = parity_data(keras_case.n_samples, keras_case.dataset)
    spec = keras_spec(dataclasses.replace(keras_case, dtype="float64"))
    model, optimizer = _keras64(spec.replace(seed=0, dataset="article"))
    with train.precision("float64"):
        xs = train.as_inputs(x, keras_case.model, "float64")
        out = []
        for t, idx in enumerate(_batches(traj, keras_case.batch_size)):
            weights, state = _before(traj, t)
            import_weights(model, weights)
            optim.import_state(optimizer, model, state)
            train.train_step(model, optimizer, xs[idx], y[idx])
            out.append(_flat(export_weights(model), optim.export_state(optimizer, model)))
    return out


def torch_steps(case, traj, x, y, dtype: str) -> list[dict]:
    """The case's torch recipe in ``dtype``: one step from each of Keras's float32 states."""
    import torch

    from torch_impl import optim, train
    from torch_impl.weights import export_weights, import_weights

    from l2compare.parity.sides import keras_casts, torch_setup

    model, optimizer = torch_setup(case, traj.initial, dtype)
    xs = train.as_inputs(x, case.model, dtype)
    ys = torch.as_tensor(y)
    out = []
    with keras_casts(case):
        for t, idx in enumerate(_batches(traj, case.batch_size)):
            weights, state = _before(traj, t)
            import_weights(model, weights)
            optim.import_state(optimizer, model, state)
            idx_t = torch.as_tensor(idx)
            train.train_step(model, optimizer, xs[idx_t], ys[idx_t])
            out.append(_flat(export_weights(model), optim.export_state(optimizer, model)))
    return out


@functools.lru_cache(maxsize=8)
def margins(keras_case) -> np.ndarray:
    """(steps,) the smallest relative float64 decision margin of each step's forward pass, from
    Keras's weights before the step. Every torch recipe compared against the same Keras
    trajectory shares them (cached per Keras side; read-only for callers)."""
    import torch

    import torch_impl
    from torch_impl import train
    from torch_impl.weights import import_weights

    from l2compare.parity.cases import parity_data
    from l2compare.parity.sides import keras_trajectory

    traj = keras_trajectory(keras_case)
    x, _ = parity_data(keras_case.n_samples, keras_case.dataset)
    model = torch_impl.build_model(keras_case.model, l2=0.0, dtype=torch.float64)
    xs = train.as_inputs(x, keras_case.model, "float64")
    out = []
    for t, idx in enumerate(_batches(traj, keras_case.batch_size)):
        import_weights(model, _before(traj, t)[0])
        out.append(decision_margin(model, xs[torch.as_tensor(idx)]))
    return np.array(out)


def run(case, traj, x, y) -> OneStep:
    """Teacher-forced one-step parity of ``case`` (a float32 ParityCase) along Keras's trajectory ``traj``."""
    from l2compare.parity.cases import keras_side

    # Weights and the optimizer's state: a recipe can take Keras's step and still keep other state
    # (decoupled decay with momentum leaves the decay out of the momentum), which a step compares.
    keras32 = [_flat(w, st) for w, st in zip(traj.steps, traj.states)]
    tensors = list(keras32[0])
    keras64 = keras_float64_steps(keras_side(case))
    torch32 = torch_steps(case, traj, x, y, "float32")
    torch64 = torch_steps(dataclasses.replace(case, dtype="float64"), traj, x, y, "float64")
    rows = [(_relative(t32, k32, k32, tensors), _relative(t32, t64, k32, tensors), _relative(k32, k64, k32, tensors),
             _relative(t64, k64, k32, tensors)) for k32, k64, t32, t64 in zip(keras32, keras64, torch32, torch64)]
    cross, torch_floor, keras_floor, cross64 = (np.array(col) for col in zip(*rows))
    return OneStep(tensors, cross, torch_floor, keras_floor, cross64, margins(keras_side(case)))


def decision_margin(model, x) -> float:
    """The smallest relative margin of the discrete decisions in ``model``'s forward pass on ``x``
    (float64): every ReLU input |z| / Σ|terms of z|, and every 2×2 MaxPool window's gap between
    its two largest positive candidates, over the larger Σ|terms| of the two (exactly equal candidates
    excepted: see below). Covers the
    article's models: each Linear/Conv2d but the last feeds a ReLU, each MaxPool2d follows one.
    """
    import torch
    from torch import nn
    from torch.nn import functional as F

    found: list[float] = []
    last_scale: list = [None]

    def layer_hook(module, inputs, output):
        (inp,) = inputs
        if isinstance(module, nn.Linear):
            scale = F.linear(inp.abs(), module.weight.abs(), module.bias.abs())
        else:
            scale = F.conv2d(inp.abs(), module.weight.abs(), module.bias.abs(), module.stride, module.padding,
                             module.dilation, module.groups)
        last_scale[0] = scale
        if module is not final:
            # All-zero terms are computed exactly: no rounding to tie (0/0 and x/0 count as no margin limit).
            ratio = torch.where(scale > 0, output.abs() / scale, torch.inf)
            found.append(float(ratio.min()))

    def pool_hook(module, inputs, output):
        (r,) = inputs  # post-ReLU (N, C, H, W); windows of 2×2, stride 2, floor
        scale = last_scale[0]
        win = F.unfold(r.flatten(0, 1).unsqueeze(1), 2, stride=2)  # (N·C, 4, windows)
        swin = F.unfold(scale.flatten(0, 1).unsqueeze(1), 2, stride=2)
        top2, where = win.topk(2, dim=1)
        # A zero candidate is a ReLU decision, counted above. Candidates exactly equal in float64 come
        # from identical inputs (the blank background of digits): every framework and precision computes
        # them bit for bit alike, so rounding cannot order them; not a rounding tie.
        both = (top2[:, 1] > 0) & (top2[:, 0] > top2[:, 1])
        if both.any():
            s = torch.maximum(swin.gather(1, where[:, :1]), swin.gather(1, where[:, 1:2]))[:, 0]
            found.append(float(((top2[:, 0] - top2[:, 1])[both] / s[both]).min()))

    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    final = layers[-1]
    handles = [m.register_forward_hook(layer_hook) for m in layers]
    handles += [m.register_forward_hook(pool_hook) for m in model.modules() if isinstance(m, nn.MaxPool2d)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return min(found) if found else float("inf")
