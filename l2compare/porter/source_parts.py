"""The text of a generated port: header, module class, penalties, parameter groups, loader."""
from __future__ import annotations

import inspect
import textwrap

import keras

from l2compare.porter.layers.registry import Penalty


def _carried(notes: list[str]) -> str:
    """One bullet per distinct note; layers with the same note share it ("bn, bn_1: ...")."""
    grouped: dict[str, list[str]] = {}
    for note in notes:
        layer, _, text = note.partition(": ")
        grouped.setdefault(text or layer, []).append(layer if text else "")
    lines = []
    for text, layers in grouped.items():
        named = ", ".join(dict.fromkeys(x for x in layers if x))
        lines.append(textwrap.fill(f"{named}: {text}" if named else text, 96, initial_indent="- ",
                                   subsequent_indent="  "))
    return "\n".join(lines) or "- nothing beyond the layers' own arguments"


def _usage(cls: str, fold: bool, extra: bool) -> str:
    data = "F.cross_entropy(model(x), y)" if fold else "data_loss(model(x), y)"
    more = " + extra_penalty(model)" if extra else ""
    return f"""    model = build()                       # {cls} with the Keras model's weights
    # Keras's regularizers, exactly: their penalty in the loss (recipe `penalty`) ...
    loss = {data} + l2_penalty(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    # ... or each L2 term as weight decay 2λ on exactly its tensor (recipe `coupled`):
    loss = {data}{more}
    optimizer = torch.optim.SGD(param_groups(model), lr=0.01)
    # torch's Adam puts ε inside its bias correction, Keras's outside: for Keras's Adam arithmetic, see
    # l2compare's torch_impl.optim.KerasAdam (PORTING.md, "Adam's ε")."""


def _header(model, cls, notes, dtype, fold, extra) -> str:
    shapes = ", ".join(f"(N, {', '.join(str(d) for d in t.shape[1:])})" for t in model.inputs)
    out = ("logits: the Keras model ends in a softmax, which the loss applies\n"
           "(F.cross_entropy on these logits is Keras's crossentropy on its probabilities)"
           if fold else "the Keras model's output, in Keras's layout")
    return f'''"""PyTorch port of the Keras model {model.name!r}, written by `l2compare port`
from Keras {keras.__version__} ({keras.backend.backend()} backend), {dtype}.

Input: {shapes}, the same arrays as the Keras model (Keras's layout: channels last).
Output: {out}.

Usage:
{_usage(cls, fold, extra)}

Carried from Keras:
{_carried(notes)}
"""
import os

import torch
from torch import nn
from torch.nn import functional as F
'''


def model_class(cls, model, modules, inputs, lines, outputs, has_activity) -> str:
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




def _penalty_fn(penalties: list[Penalty], has_activity: bool, dtype: str) -> str:
    terms = []
    for p in penalties:
        expr = f"{p.lam!r} * {_param(p)}.square().sum()" if p.kind == "l2" else f"{p.lam!r} * {_param(p)}.abs().sum()"
        terms.append((expr, f"{p.keras}: {p.kind.upper()}"))
    if has_activity:
        terms.append(("model.activity_penalty", "activity regularizers, from the last forward pass"))
    if not terms:
        # torch.zeros, not a parameter's new_zeros: a model may have no parameter at all
        body = f"    return torch.zeros((), dtype=torch.{dtype})  # the Keras model has no regularizer"
    else:
        parts = [f"        {'+ ' if i else '  '}{expr}  # {why}" for i, (expr, why) in enumerate(terms)]
        body = "    return (\n" + "\n".join(parts) + "\n    )"
    return f'''

def l2_penalty(model):
    """What Keras adds to the loss for its regularizers: λ·Σw² per L2 term, λ·Σ|w| per L1 term, with
    λ exactly as Keras applies it. Add it to the data loss (the `penalty` recipe: exact)."""
{body}
'''


def _groups_fn(penalties: list[Penalty], has_activity: bool) -> str:
    decays = [(_param(p), 2.0 * p.lam, p.keras) for p in penalties if p.kind == "l2"]
    others = [p for p in penalties if p.kind != "l2"]
    caveat = ("\n    L1 and activity terms cannot be written as weight decay: keep them in the loss (extra_penalty)."
              if others or has_activity else "")
    entries = "".join(f"        {param}: {wd!r},  # 2λ, {keras}\n" for param, wd, keras in decays)
    return f'''

def param_groups(model):
    """Parameter groups for the `coupled` recipe: torch's weight_decay=c adds c·w to the gradient,
    and Keras's L2 adds 2λ·w, so c = 2λ on exactly the tensors Keras regularizes, 0 elsewhere.{caveat}"""
    decay = {{
{entries}    }}
    rest = [p for p in model.parameters() if p not in decay]   # tensors hash by identity
    return [{{"params": [p], "weight_decay": wd}} for p, wd in decay.items()] + [{{"params": rest, "weight_decay": 0.0}}]
''' + (_extra_fn(others, has_activity) if others or has_activity else "")


def _extra_fn(others: list[Penalty], has_activity: bool) -> str:
    terms = [(f"{p.lam!r} * {_param(p)}.abs().sum()", f"{p.keras}: L1") for p in others]
    if has_activity:
        terms.append(("model.activity_penalty", "activity regularizers, from the last forward pass"))
    parts = [f"        {'+ ' if i else '  '}{expr}  # {why}" for i, (expr, why) in enumerate(terms)]
    return '''

def extra_penalty(model):
    """Keras's terms that weight decay cannot carry (L1, activity): with param_groups, add them to the loss."""
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
             has_activity, weights_file, classes=()) -> str:
    """The file; ``classes`` are the nested models' classes (``nesting.class_source``), inner first."""
    helper_src = "".join("\n\n" + inspect.getsource(h) for h in helpers) + "".join(classes)
    extra = has_activity or any(p.kind != "l2" for p in penalties)
    return (_header(model, cls, notes, dtype, fold, extra) + helper_src
            + model_class(cls, model, modules, inputs, lines, outputs, has_activity)
            + _penalty_fn(penalties, has_activity, dtype) + _groups_fn(penalties, has_activity)
            + _loader(cls, dtype, weights_file))
