"""verify's torch side: the port trained by one recipe, in lockstep with a copy started one ulp away.

Recipes (``RECIPES``): ``penalty`` (the Keras-exact optimizer, every regularization term in the loss),
``coupled`` (the Keras-exact optimizer, each group's L2 as coupled weight decay g += 2λ·w, the rest
in the loss), ``stock`` (torch's own Adam, SGD or AdamW with Keras's hyperparameters, penalty in the
loss). ``rounding_driven`` finds the tensors whose float64 gradient is zero up to rounding.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from l2compare.core.verdicts import one_ulp_up
from l2compare.porter.convert import load_state
from l2compare.porter.verify.keras_side import HYPERPARAMETERS

RECIPES = ("penalty", "coupled", "stock")
NOISE = 1e-12   # a float64 gradient this small relative to the largest is zero up to rounding


def _f32(value: float) -> float:
    """A hyperparameter as Keras applies it to a variable (``ops.cast`` of a Python float: through
    float32 on TensorFlow), for torch's stock classes; torch_impl's Keras-exact ones do this themselves."""
    return float(np.float32(value))


class TorchRun:
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
        # The generated file has extra_penalty exactly when the model has such terms.
        return [self.module.extra_penalty(model)] if hasattr(self.module, "extra_penalty") else []

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
        models = [self.build(start)] + ([self.build(one_ulp_up(start))] if envelope else [])
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


def rounding_driven(run: TorchRun, initial: dict[str, np.ndarray]) -> dict[str, str]:
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
    # Buffers one training forward pass updates differently once one of those tensors moves (each
    # moved alone, so that a buffer names the tensors it really depends on).
    base = run.build(initial, torch.float64)
    with torch.no_grad():
        base(*xs)
    after = base.state_dict()
    sources: dict[str, list[str]] = {}
    for tensor in noise:
        moved = run.build(initial, torch.float64)
        with torch.no_grad():
            dict(moved.named_parameters())[tensor].add_(0.5)
            moved(*xs)
        moved_after = moved.state_dict()
        for name, _ in base.named_buffers():
            a, b = after.get(name), moved_after.get(name)
            if a is not None and a.is_floating_point() and name in run.keys and a.numel() \
                    and float((a - b).abs().max()) > NOISE * (1.0 + float(a.abs().max())):
                sources.setdefault(name, []).append(tensor)
    for name, tensors in sources.items():
        out[name] = f"updated from {', '.join(tensors)}"
    return out
