"""A model used as a layer (a nested backbone, a siamese encoder): a class of its own in the file, and
a submodule of the outer model under Keras's name, so that ``model.base.conv1`` reads as in Keras.

What Keras does with a nested model, and so what the port does (Keras 3.15's source, measured in
``comparisons/test_port_nested.py``):

- one set of weights however often it is called; each weight's regularizer counted once
  (``Layer.losses`` reads ``trainable_weights``, which holds each variable once), activity
  regularizers once per call (each call adds its own);
- ``trainable=False`` on the model sets it on every layer inside it (the ``trainable`` setter
  recurses): those weights are neither trained nor regularized, and a frozen BatchNorm normalizes
  with its moving statistics; the code generator freezes layer by layer, so a layer switched back
  on inside a frozen model trains, as in Keras;
- ``base(x, training=False)`` is recorded in the graph, but when the outer model is called with
  ``training=True`` (``fit`` does) the outer value overrides it (``functional.operation_fn`` sets
  every call's ``training``): the backbone's BatchNorm normalizes with batch statistics and moves its
  moving statistics. The port follows the model's mode too, and the file says so.
"""
from __future__ import annotations

from l2compare.porter import source_parts
from l2compare.porter.layers.registry import Ctx, Penalty, Port


def _prefixed(note: str, name: str) -> str:
    layer, sep, text = note.partition(": ")
    return f"{name}/{layer}{sep}{text}" if sep else note


def port_model(ctx: Ctx, body) -> tuple[Port, bool]:
    """The outer model's view of a nested ``body`` (``codegen._Body``): a submodule and its call, the
    penalties and weights under its attribute, and whether the call adds activity terms."""
    model, attr = ctx.layer, ctx.attr
    args = ", ".join(f"{{x{i}}}" for i in range(len(ctx.shapes)))
    forward = [f"{{y}} = self.{attr}({args})  # the nested model {model.name!r}"]
    if body.has_activity:   # its activity terms of this call, as Keras adds them per call
        forward.append(f"activity = activity + self.{attr}.activity_penalty")
    penalties = [Penalty(f"{attr}.{p.key}", p.kind, p.lam, f"{model.name}/{p.keras}") for p in body.penalties]

    def read():
        return {f"{attr}.{key}": value for key, value in body.state().items()}

    notes = [_prefixed(n, model.name) for n in body.notes]
    training = (ctx.node.kwargs or {}).get("training") if ctx.node is not None else None
    if training is not None:
        notes.append(f"{model.name}: called with training={training}, which Keras 3 overrides whenever the outer "
                     "model is called with a training value (fit calls it with training=True: "
                     "functional.operation_fn), so its BatchNorm and dropout follow the outer model's mode; so "
                     "do the port's (module.train()/eval()). To keep BatchNorm in inference while fine-tuning, "
                     "freeze the BatchNorm layers (trainable=False), in Keras and so in the port")
    if not model.trainable:
        notes.append(f"{model.name}: trainable=False, so every layer in it is frozen (requires_grad=False) and "
                     "unregularized, as Keras's trainable setter and Layer.losses make it")
    return Port(ctx.out_shape, forward, modules={attr: f"{body.cls}()"}, state=read, penalties=penalties,
                notes=notes, helpers=tuple(body.helpers)), body.has_activity


def class_source(model, body) -> str:
    """The nested model's class: Keras's and torch's layouts as at the outer model's boundary."""
    return source_parts.model_class(body.cls, model, body.modules, body.inputs, body.lines, body.outputs,
                                    body.has_activity)
