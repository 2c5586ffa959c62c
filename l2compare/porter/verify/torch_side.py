"""verify's torch side: the port trained by one recipe (``TorchRun``), and the optimizer state moved
between Keras's layout of it (the flat "key:slot" arrays ``KerasSide.flat`` reads) and each torch class.

Recipes (``RECIPES``): ``penalty`` (the Keras-exact optimizer, every regularization term in the loss),
``coupled`` (the Keras-exact optimizer, each group's L2 as coupled weight decay g += 2λ·w, the rest
in the loss), ``stock`` (torch's own Adam, SGD or AdamW with Keras's hyperparameters, penalty in the
loss). ``rounding_driven`` finds the tensors whose float64 gradient is zero up to rounding.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from l2compare.porter.convert import load_state
from l2compare.porter.verify.keras_side import HYPERPARAMETERS

RECIPES = ("penalty", "coupled", "stock")
NOISE = 1e-12   # a float64 gradient this small relative to the largest is zero up to rounding
NAMED = 8       # rounding-driven tensors whose buffers are traced one by one (rounding_driven)


# torch.optim's hyperparameters that Keras casts through float32 (``_f32``) where it has them; lr and ε stay as given
# (Keras keeps them in the variable's dtype).
THROUGH_FLOAT32 = ("momentum", "weight_decay", "betas", "dampening")


def keras_rounded(key: str, value):
    """A torch.optim hyperparameter (``key``) as Keras would apply it: floats of THROUGH_FLOAT32 through float32."""
    if key not in THROUGH_FLOAT32 or isinstance(value, bool):
        return value
    if isinstance(value, tuple):
        return tuple(_f32(v) if isinstance(v, float) else v for v in value)
    return _f32(value) if isinstance(value, float) else value


def _f32(value: float) -> float:
    """A hyperparameter as Keras applies it to a variable (``ops.cast`` of a Python float: through
    float32 on TensorFlow), for torch's stock classes; torch_impl's Keras-exact ones do this themselves."""
    return float(np.float32(value))


def stock_optimizer(optimizer: str) -> tuple[str, dict]:
    """torch.optim's own class for one of verify's Keras optimizers, with Keras's hyperparameters under torch's
    names, as given (``_f32`` rounds them where Keras does): the ``stock`` recipe, and ``verify --torch``'s
    optimizer when none is given."""
    h = HYPERPARAMETERS[optimizer]
    if optimizer in ("sgd", "momentum"):
        return "SGD", {"lr": h["learning_rate"], **({"momentum": h["momentum"]} if "momentum" in h else {})}
    kwargs = {"lr": h["learning_rate"], "betas": (h["beta_1"], h["beta_2"]), "eps": h["epsilon"]}
    return ("AdamW", {**kwargs, "weight_decay": h["weight_decay"]}) if optimizer == "adamw" else ("Adam", kwargs)


def data_loss(loss: str, out: torch.Tensor, y: torch.Tensor, returns_logits: bool = True) -> torch.Tensor:
    """verify's task loss on a model's output: logits (the generated port), or the probabilities of a softmax
    model (a user's port that returns them)."""
    if loss == "mean_squared_error":
        return F.mse_loss(out, y)
    scores = out if returns_logits else torch.log(out)   # probabilities: cross-entropy is −log p of the target
    scores = scores.movedim(-1, 1) if scores.ndim > 2 else scores   # torch wants classes on dim 1
    if loss == "sparse_categorical_crossentropy":
        return F.cross_entropy(scores, y) if returns_logits else F.nll_loss(scores, y)
    target = y.movedim(-1, 1) if y.ndim > 2 else y
    return F.cross_entropy(scores, target) if returns_logits else -(target * scores).sum(1).mean()


class TorchRun:
    """One recipe's training of the port, from any starting state."""

    def __init__(self, tm, recipe, optimizer, loss, x, y, batch_size, keys, trainable, hook=None):
        self.tm, self.recipe, self.optimizer, self.loss, self.hook = tm, recipe, optimizer, loss, hook
        self.x = [torch.from_numpy(np.ascontiguousarray(a)) for a in x]
        self.y = torch.from_numpy(np.ascontiguousarray(y))
        self.batch_size, self.keys, self.trainable = batch_size, keys, trainable
        self.module = tm.source_module

    def build(self, state, dtype=None):
        model = getattr(self.module, self.tm.port.class_name)().to(dtype or getattr(torch, self.tm.port.dtype))
        load_state(model, state)
        for name, p in model.named_parameters():
            p.requires_grad_(name in self.trainable)
        if self.hook is not None:   # a test's port mistake in the module (verify's hook)
            self.hook(self, model, None)
        return model.train()

    def data_loss(self, out, y):
        return data_loss(self.loss, out, y)

    def extra_terms(self, model):
        """What the coupled recipe keeps in the loss: the terms weight decay cannot be (L1, activity)."""
        # The generated file has extra_penalty exactly when the model has such terms.
        return [self.module.extra_penalty(model)] if hasattr(self.module, "extra_penalty") else []

    def make_optimizer(self, model):
        optimizer = self._make_optimizer(model)
        if self.hook is not None:   # a test's port mistake (l2compare.porter.verify.runner.verify's hook)
            self.hook(self, model, optimizer)
        return optimizer

    def _make_optimizer(self, model):
        h = HYPERPARAMETERS[self.optimizer]
        params = [p for p in model.parameters() if p.requires_grad]
        if self.recipe == "stock":
            name, kwargs = stock_optimizer(self.optimizer)
            return getattr(torch.optim, name)(params, **{k: keras_rounded(k, v) for k, v in kwargs.items()})
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

    def trajectory(self, start: dict[str, np.ndarray], dtype=None):
        """A model and optimizer trained freely from ``start`` (``step`` each batch in turn)."""
        model = self.build(start, dtype)
        return model, self.make_optimizer(model)


# Per optimizer class: its state key for each of Keras's slots.
_STATE_KEYS = {"KerasAdam": {"momentum": "m", "velocity": "v"}, "KerasSGD": {"momentum": "momentum"},
               "Adam": {"momentum": "exp_avg", "velocity": "exp_avg_sq"},
               "AdamW": {"momentum": "exp_avg", "velocity": "exp_avg_sq"}, "SGD": {"momentum": "momentum_buffer"}}


def import_slots(optimizer, params: dict, flat: dict, iterations: int) -> None:
    """Give ``optimizer`` Keras's state (``flat``'s "key:slot" arrays, torch layout; ``params`` by key),
    so that its next step continues Keras's. Stock SGD keeps b = −m/lr where Keras keeps m."""
    optimizer.state.clear()
    if iterations == 0:
        return   # a fresh optimizer: every class starts from zero moments
    keys = _STATE_KEYS[type(optimizer).__name__]
    group_of = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    for name, p in params.items():
        if id(p) not in group_of:
            continue
        entry = {}
        for slot, key in keys.items():
            if f"{name}:{slot}" in flat:
                value = torch.tensor(np.asarray(flat[f"{name}:{slot}"]), dtype=p.dtype)   # a copy: updated in place
                entry[key] = -value / group_of[id(p)]["lr"] if type(optimizer) is torch.optim.SGD else value
        if type(optimizer).__name__ == "KerasAdam":
            entry["step"] = iterations
        elif isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)):
            entry["step"] = torch.tensor(float(iterations))
        optimizer.state[p] = entry


def export_slots(optimizer, params: dict) -> dict[str, np.ndarray]:
    """The optimizer's state after a step as "key:slot" arrays (Keras's slots, torch layout)."""
    keys = _STATE_KEYS[type(optimizer).__name__]
    group_of = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    out = {}
    for name, p in params.items():
        entry = optimizer.state.get(p, {})
        for slot, key in keys.items():
            if key in entry:
                value = entry[key].detach()
                if type(optimizer) is torch.optim.SGD:
                    value = -value * group_of[id(p)]["lr"]
                out[f"{name}:{slot}"] = value.numpy().copy()
    return out


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
    # moved alone, so that a buffer names the tensors it really depends on). In float64, where what a
    # BatchNormalization cancels stays cancelled to 1e-16 downstream (in float32 every later statistic
    # would move by rounding); on two samples, enough for a batch statistic and a quarter of a batch's cost.
    xs = [a[:2] for a in xs]
    base = run.build(initial, torch.float64)
    with torch.no_grad():
        base(*xs)
    after = base.state_dict()
    sources: dict[str, list[str]] = {}
    # Each tensor moved alone costs a forward pass per tensor (ResNet50 at 224×224: 53 biases, 80 s); past
    # NAMED of them, all move together in one pass and a buffer is said to follow "these tensors".
    groups = [[t] for t in noise] if len(noise) <= NAMED else [noise]
    for group in groups:
        moved = run.build(initial, torch.float64)
        with torch.no_grad():
            for tensor in group:
                dict(moved.named_parameters())[tensor].add_(0.5)
            moved(*xs)
        moved_after = moved.state_dict()
        for name, _ in base.named_buffers():
            a, b = after.get(name), moved_after.get(name)
            if a is not None and a.is_floating_point() and name in run.keys and a.numel() \
                    and float((a - b).abs().max()) > NOISE * (1.0 + float(a.abs().max())):
                sources.setdefault(name, []).extend(group)
    if len(groups) == 1 and len(noise) > NAMED:
        for name in sources:
            out[name] = f"updated from one or more of the {len(noise)} tensors above driven by rounding"
        return out
    for name, tensors in sources.items():
        out[name] = f"updated from {', '.join(tensors)}"
    return out
