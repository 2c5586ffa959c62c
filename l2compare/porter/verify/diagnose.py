"""Which known porting mistake a user's step looks like, by measurement.

From the same Keras state as the user's step that was not exact, the generated port (``codegen``, exact by
construction) takes the same step in float64 with known mistakes put in, alone and combined:

* the L2 term: as Keras (gradient 2λ·w), ``half`` (λ·w: weight_decay=λ where 2λ is needed, or a penalty of
  λ/2·Σw²), ``double`` (4λ·w: weight_decay=4λ, or a penalty of 2λ·Σw² on top of 2λ decay), ``decoupled``
  (the L2 gradient gone, w −= lr·wd·w instead, AdamW-style, with the user's wd on each tensor it decays, else 2λ),
  ``missing`` (no L2 at all);
* for Keras's Adam: torch's ε placement (torch.optim.Adam: ε inside the bias correction, the user's ε);
* with BatchNormalization: torch's momentum 0.1 where Keras's 0.99 is torch's 0.01, and nn.BatchNorm's running
  variance (moved with the batch's unbiased variance, × n/(n−1); Keras moves it with the biased one);
* where the user's weight_decay reaches tensors Keras does not regularize (``--decay-on all``: biases,
  BatchNorm's γ and β, kernels without a regularizer) and Keras's optimizer has no decay of its own: that
  decay on them too, coupled (g += wd·w) or, with ``decoupled``, decoupled.

The user's float64 step is compared with each candidate as verify compares it with Keras's: per tensor and
slot, relative to the tensor's max |·|, allowed float64's share of the step's rounding floors plus
``EXACT_FLOAT64`` (``l2compare.core.onestep``). A candidate within that matches; the first match in the order
above is named (plain SGD cannot tell coupled from decoupled decay: the others that match are listed).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch

from l2compare.core.onestep import FLOAT64_SHARE, relative
from l2compare.core.verdicts import EXACT_FLOAT64
from l2compare.porter.verify.keras_side import HYPERPARAMETERS
from l2compare.porter.verify.torch_side import TorchRun, export_slots, import_slots
from l2compare.porter.verify.user_step import keras_penalty

L2_SCALE = {"keras": 1.0, "half": 0.5, "double": 2.0, "decoupled": 0.0, "missing": 0.0}
L2_TEXT = {"half": "factor 2: L2 gradient λ·w instead of Keras's 2λ·w (weight_decay=λ, or penalty λ/2·Σw²)",
           "double": "factor 2: L2 gradient 4λ·w instead of Keras's 2λ·w (weight_decay=4λ, or penalty 2λ·Σw²)",
           "decoupled": "decoupled weight decay (w −= lr·wd·w, AdamW-style) instead of Keras's L2 in the gradient",
           "missing": "no L2 at all (neither --penalty nor weight_decay)"}
L2_SHORT = {"half": "factor 2 (L2 gradient λ·w; Keras's is 2λ·w)",
            "double": "factor 2 (L2 gradient 4λ·w; Keras's is 2λ·w)",
            "decoupled": "decoupled weight decay (AdamW-style) instead of L2", "missing": "L2 missing"}
EPS_TEXT = "torch's Adam ε placement (ε inside the bias correction; Keras: outside)"
BN_TEXT = "BatchNorm momentum 0.1 in torch's convention (Keras's 0.99 is torch's 0.01)"
UNBIASED_TEXT = "BatchNorm's running variance moved with the unbiased batch variance (nn.BatchNorm; Keras: biased)"
EVERYWHERE_TEXT = "weight decay on tensors Keras does not regularize (model.parameters() where Keras regularizes some)"


@dataclass(frozen=True)
class Candidate:
    l2: str = "keras"
    eps: bool = False
    bn: bool = False
    unbiased: bool = False
    everywhere: bool = False

    @property
    def name(self) -> str:
        parts = ([L2_TEXT[self.l2]] if self.l2 != "keras" else []) + ([EPS_TEXT] if self.eps else []) \
            + ([BN_TEXT] if self.bn else []) + ([UNBIASED_TEXT] if self.unbiased else []) \
            + ([EVERYWHERE_TEXT] if self.everywhere else [])
        return " + ".join(parts) or "Keras's own step (no known mistake)"

    @property
    def short(self) -> str:
        parts = ([L2_SHORT[self.l2]] if self.l2 != "keras" else []) \
            + (["torch's Adam ε placement"] if self.eps else []) \
            + (["BatchNorm momentum 0.1 (torch's convention)"] if self.bn else []) \
            + (["BatchNorm's running variance unbiased (nn.BatchNorm's)"] if self.unbiased else []) \
            + (["weight decay on tensors Keras does not regularize"] if self.everywhere else [])
        return " + ".join(parts) or "Keras's own step"


class Diagnoser:
    """Candidate steps on the generated port of one float64 Keras side."""

    def __init__(self, side64, keras_optimizer: str, loss: str, x, y, batch_size: int, keys: list[str],
                 trainable: set[str], penalties, decay: dict[str, float], user_eps: float | None):
        self.keras_optimizer, self.keys, self.penalties = keras_optimizer, keys, penalties
        # Keras's own decay (AdamW) covers every tensor; otherwise the L2 tensors' rates stand for L2, and the user's
        # rates on the other tensors are the "everywhere" mistake.
        l2_keys = {p.key for p in penalties if p.kind == "l2"}
        own = "weight_decay" in HYPERPARAMETERS[keras_optimizer]
        self.decay = dict(decay) if own else {k: v for k, v in decay.items() if k in l2_keys}
        self.extra = {} if own else {k: v for k, v in decay.items() if k not in l2_keys}
        self.user_eps = user_eps
        self.runs = {r: TorchRun(side64.tm, r, keras_optimizer, loss, x, y, batch_size, keys, trainable)
                     for r in ("penalty", "stock")}
        self.full = side64.port.state()
        probe = self.runs["penalty"].build(self.full, torch.float64)
        self.has_bn = any(type(m).__name__ == "KerasBatchNorm" for m in probe.modules())

    def candidates(self) -> list[Candidate]:
        l2 = ["keras"] + (["half", "double"] if any(p.kind == "l2" for p in self.penalties) else [])
        if self.decay:
            l2.append("decoupled")
        if any(p.kind == "l2" for p in self.penalties):
            l2.append("missing")
        eps = [False, True] if self.keras_optimizer in ("adam", "adamw") else [False]
        bn = [False, True] if self.has_bn else [False]
        everywhere = [False, True] if self.extra else [False]
        return [Candidate(a, b, c, d, e) for e, d, c, b, a in itertools.product(everywhere, bn, bn, eps, l2)]

    def step(self, cand: Candidate, flat: dict, iterations: int, batch: slice) -> dict[str, np.ndarray]:
        run = self.runs["stock" if cand.eps else "penalty"]
        model = run.build({**self.full, **{k: flat[k] for k in self.keys}}, torch.float64)
        for m in model.modules():
            if type(m).__name__ == "KerasBatchNorm":
                if cand.bn:
                    m.momentum = 0.9   # Keras's convention: torch's momentum 0.1
                if cand.unbiased:
                    m.register_forward_pre_hook(_remember_running_var)
                    m.register_forward_hook(_unbiased_running_var)
        loss = run.data_loss(model(*(a[batch] for a in run.x)), run.y[batch])
        loss = loss + keras_penalty(self.penalties, model.get_parameter, L2_SCALE[cand.l2])
        if cand.everywhere and cand.l2 != "decoupled":   # coupled decay wd·w is the gradient of wd/2·Σw²
            for key, wd in self.extra.items():
                loss = loss + 0.5 * wd * model.get_parameter(key).square().sum()
        if hasattr(model, "activity_penalty"):
            loss = loss + model.activity_penalty
        params = {name: p for name, p in model.named_parameters() if p.requires_grad}
        grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
        for p, g in zip(params.values(), grads):
            p.grad = torch.zeros_like(p) if g is None else g
        optimizer = run.make_optimizer(model)
        if cand.eps and self.user_eps is not None:
            for group in optimizer.param_groups:
                group["eps"] = self.user_eps
        import_slots(optimizer, params, flat, iterations)
        if cand.l2 == "decoupled":   # before the update, from the weights the gradient was taken at (as Keras)
            lr = HYPERPARAMETERS[self.keras_optimizer]["learning_rate"]
            rates = {**self.decay, **self.extra} if cand.everywhere else self.decay
            with torch.no_grad():
                for name, p in params.items():
                    if rates.get(name):
                        p.sub_(p * rates[name] * lr)
        optimizer.step()
        state = model.state_dict()
        return {**{k: state[k].detach().numpy().copy() for k in self.keys}, **export_slots(optimizer, params)}

    def diagnose(self, user64: dict, keras32: dict, floor: np.ndarray, tensors: list[str], flat: dict,
                 iterations: int, batch: slice) -> dict:
        """{"match": the first candidate within rounding (or None), "also": other matches, "closest", "rows":
        every candidate's max difference and excess over what rounding allows}."""
        rows = []
        for cand in self.candidates():
            diff = relative(user64, self.step(cand, flat, iterations, batch), keras32, tensors)
            excess = diff - FLOAT64_SHARE * floor - EXACT_FLOAT64
            worst = int(np.argmax(diff)) if len(diff) else 0
            rows.append({"candidate": cand.name, "short": cand.short, "max": float(diff.max(initial=0.0)),
                         "tensor": tensors[worst] if tensors else None,
                         "max_excess": float(excess.max(initial=-np.inf)),
                         "matches": bool(excess.max(initial=-1.0) <= 0)})
        matches = [r for r in rows if r["matches"]]
        closest = min(rows, key=lambda r: r["max"])
        return {"match": matches[0] if matches else None, "also": [r["short"] for r in matches[1:]],
                "unregularized": sorted(self.extra),
                "closest": closest, "rows": rows,
                "tolerance": "float64, per tensor and slot: |user − candidate| / max |Keras| ≤ 2⁻²⁹ × the step's "
                             f"float32 floors + {EXACT_FLOAT64:g}"}


def _remember_running_var(bn, inputs):
    bn._var_before, bn._n = bn.running_var.clone(), inputs[0].numel() // inputs[0].shape[bn.dim]


def _unbiased_running_var(bn, inputs, output):
    """KerasBatchNorm's running variance as nn.BatchNorm moves it: the batch variance it took (biased) × n/(n−1)."""
    if not bn.training or bn.frozen or bn._n < 2:
        return
    with torch.no_grad():
        kept = bn._var_before * bn.momentum
        bn.running_var.copy_(kept + (bn.running_var - kept) * (bn._n / (bn._n - 1)))

