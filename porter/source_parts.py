"""The text of a generated port: header, module class, penalties, parameter groups, loader."""
from __future__ import annotations

import inspect
import textwrap

import keras

from porter.emit import Penalty


def _header(model, cls, notes, dtype, fold, inputs) -> str:
    shapes = ", ".join(f"(N, {', '.join(str(d) for d in t.shape[1:])})" for t in model.inputs)
    out = ("logits: the Keras model ends in a softmax, which the loss applies "
           "(torch.nn.functional.cross_entropy on these logits is Keras's crossentropy on its probabilities)"
           if fold else "the Keras model's output, in Keras's layout")
    carried = "\n".join(textwrap.fill(n, 96, initial_indent="- ", subsequent_indent="  ") for n in notes) \
        or "- nothing beyond the layers' own arguments"
    return f'''"""PyTorch port of the Keras model {model.name!r}, written by `l2compare port`
from Keras {keras.__version__} ({keras.backend.backend()} backend), {dtype}.

Input: {shapes}, the same arrays as the Keras model (Keras's layout: channels last).
Output: {out}.

Usage:
    model = build()                       # {cls} with Keras's weights ({weights_name(dtype)})
    loss = F.cross_entropy(model(x), y) + l2_penalty(model)      # Keras's L2, exactly
    optimizer = torch.optim.SGD(param_groups(model), lr=0.01)     # or the coupled recipe instead

Carried from Keras:
{carried}
"""
import os

import torch
from torch import nn
from torch.nn import functional as F
'''


def weights_name(dtype: str) -> str:
    return f"torch.{dtype}"


def _class(cls, model, modules, inputs, lines, outputs, has_activity) -> str:
    init = "\n".join(f"        self.{attr} = {ctor}" for attr, ctor in modules.items()) or "        pass"
    body = []
    if has_activity:
        body.append("activity = 0.0")
    body.extend(lines)
    if has_activity:
        body.append("self.activity_penalty = activity  # Keras's activity regularizers, added by l2_penalty")
    body.append("return " + (outputs[0] if len(outputs) == 1 else "(" + ", ".join(outputs) + ",)"))
    forward = "\n".join("        " + line for line in body)
    return f'''

class {cls}(nn.Module):
    """Keras's {model.name!r}, layer for layer; attributes carry Keras's layer names."""

    def __init__(self):
        super().__init__()
{init}

    def forward(self, {", ".join(inputs)}):
{forward}
'''


def _param(p: Penalty) -> str:
    return "model." + p.key


def _penalty_fn(penalties: list[Penalty], has_activity: bool) -> str:
    terms = []
    for p in penalties:
        expr = f"{p.lam!r} * {_param(p)}.square().sum()" if p.kind == "l2" else f"{p.lam!r} * {_param(p)}.abs().sum()"
        terms.append((expr, f"{p.keras}: {p.kind.upper()}"))
    if has_activity:
        terms.append(("model.activity_penalty", "activity regularizers, from the last forward pass"))
    if not terms:
        body = "    return next(model.parameters()).new_zeros(())  # the Keras model has no regularizer"
    else:
        parts = [f"        {'+ ' if i else '  '}{expr}  # {why}" for i, (expr, why) in enumerate(terms)]
        body = "    return (\n" + "\n".join(parts) + "\n    )"
    return f'''

def l2_penalty(model):
    """What Keras adds to the loss for its regularizers: λ·Σw² per L2 term, λ·Σ|w| per L1 term, with
    λ exactly as Keras applies it. Add it to the data loss (the `penalty` recipe: exact)."""
{body}
'''


def _groups_fn(penalties: list[Penalty]) -> str:
    by_decay: dict[float, list[str]] = {}
    for p in penalties:
        if p.kind == "l2":
            by_decay.setdefault(2.0 * p.lam, []).append(_param(p))
    groups = "".join(f"        {{\"params\": [{', '.join(ps)}], \"weight_decay\": {wd!r}}},\n"
                     for wd, ps in by_decay.items())
    decayed = ", ".join(p for ps in by_decay.values() for p in ps)
    others = [p for p in penalties if p.kind != "l2"]
    caveat = ("\n    The L1 terms cannot be written as weight decay: keep them in the loss (l1_penalty)."
              if others else "")
    return f'''

def param_groups(model):
    """Parameter groups for the `coupled` recipe: torch's weight_decay=c adds c·w to the gradient,
    and Keras's L2 adds 2λ·w, so c = 2λ on exactly the tensors Keras regularizes, 0 elsewhere.{caveat}"""
    decayed = [{decayed}]
    return [
{groups}        {{"params": [p for p in model.parameters() if all(p is not q for q in decayed)], "weight_decay": 0.0}},
    ]
''' + (_l1_fn(others) if others else "")


def _l1_fn(others: list[Penalty]) -> str:
    parts = [f"        {'+ ' if i else '  '}{p.lam!r} * {_param(p)}.abs().sum()  # {p.keras}"
             for i, p in enumerate(others)]
    return '''

def l1_penalty(model):
    """Keras's L1 terms alone: what the coupled recipe keeps in the loss."""
    return (
''' + "\n".join(parts) + "\n    )\n"


def _loader(cls, dtype, weights_file) -> str:
    return f'''

WEIGHTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), {weights_file!r})


def build(weights=WEIGHTS):
    """{cls} in torch.{dtype}, with the Keras model's weights."""
    model = {cls}().to(torch.{dtype})
    model.load_state_dict(torch.load(weights, weights_only=True))
    return model
'''


def assemble(*, model, cls, inputs, modules, lines, outputs, penalties, notes, helpers, dtype, fold,
             has_activity, weights_file) -> str:
    helper_src = "".join("\n\n" + inspect.getsource(h) for h in helpers)
    return (_header(model, cls, notes, dtype, fold, inputs) + helper_src
            + _class(cls, model, modules, inputs, lines, outputs, has_activity)
            + _penalty_fn(penalties, has_activity) + _groups_fn(penalties) + _loader(cls, dtype, weights_file))
