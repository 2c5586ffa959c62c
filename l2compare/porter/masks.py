"""Keras's masks, followed through the graph as Keras follows them when the model runs.

A Keras mask is a boolean (N, T) tensor riding on a tensor (True = a real step, False = padding).
``Embedding(mask_zero=True)`` and ``Masking`` make one; most layers pass their first input's mask
on (``supports_masking``); merges OR their inputs' masks (None if any input has none); an RNN
passes it on only with ``return_sequences``; ``GlobalAveragePooling1D`` ends it; a layer that does
not support masking drops it (Keras warns). ``MultiHeadAttention`` gives its output the query's mask
and *clears* the masks of the tensors it read (``backend.set_keras_mask(query, None)``): when the
model runs, a residual ``Add([x, attention(x, x)])`` then sees no mask on ``x``, though the symbolic
graph still shows one (measured). So the masks here are computed from these rules, node by node in
Keras's order, never read from the symbolic tensors' ``_keras_mask``. Where Keras recorded the mask
as a node's ``mask`` argument (a layer called on one tensor: an RNN, GlobalAveragePooling1D), that
recorded tensor is what Keras uses when the model runs, and ``mask_of`` reads it first.

In the generated file a mask is a torch bool tensor (N, T), the same polarity as Keras's. The
layers that use a mask read it from ``ctx.masks`` (one variable name or None per input).
"""
from __future__ import annotations

import keras
from keras import layers as kl

from l2compare.porter.errors import PortError

# Layers whose call uses the mask, and whose porter reads ctx.masks.
_CONSUMERS = (kl.LSTM, kl.GRU, kl.SimpleRNN, kl.Bidirectional, kl.GlobalAveragePooling1D, kl.MultiHeadAttention)
# Merges that OR their inputs' masks (Merge.compute_mask); Concatenate and Dot have rules of their own.
_OR_MERGES = (kl.Add, kl.Subtract, kl.Multiply, kl.Average, kl.Maximum, kl.Minimum)


def _overrides_compute_mask(layer) -> bool:
    return type(layer).compute_mask is not keras.layers.Layer.compute_mask


class Tracker:
    """The mask variable (or None) of every tensor of one graph, as its nodes are written."""

    def __init__(self, identifier, taken: set):
        self._identifier, self._taken = identifier, taken
        self.masks: dict[int, str] = {}     # id(KerasTensor) -> mask variable
        self.notes: list[str] = []

    def inputs(self, node) -> list:
        """The mask variable of each of the node's inputs (None where it has none)."""
        return [self.masks.get(id(t)) for t in node.inputs]

    def _new(self, ctx, lines: list, expr: str, why: str) -> str:
        name = self._identifier(f"{ctx.attr}_mask", self._taken)
        lines.append(f"{name} = {expr}  # (N, T) Keras's mask, True = a real step: {why}")
        return name

    def step(self, ctx, node, variables: list[str]) -> list[str]:
        """Lines computing the node's output mask (written before its forward lines, which may
        reuse an input's variable), and the output's mask recorded; PortError where Keras would use
        a mask the porter does not carry."""
        op, masks, lines = node.operation, list(ctx.masks), []
        has_mask = any(m is not None for m in masks)
        out = None
        if isinstance(op, keras.Model):
            if has_mask:
                raise PortError(f"layer {op.name!r} ({type(op).__name__}) is a nested model that receives a "
                                "mask: masks are not carried into nested models")
        elif not isinstance(op, keras.layers.Layer):
            out = None   # a keras.ops call: an Operation, which neither reads nor passes on masks
        elif type(op) is kl.Embedding and op.mask_zero:
            out = self._new(ctx, lines, f"{variables[0]} != 0", "Embedding(mask_zero=True), index 0 is padding")
        elif type(op) is kl.Masking:
            value = float(op.mask_value)
            out = self._new(ctx, lines, f"({variables[0]} != {value!r}).any(dim=-1)",
                            f"Masking({value}), a step whose every feature equals it is padding")
        elif type(op) is kl.MultiHeadAttention:
            out = masks[0]   # the query's
            for t in node.inputs:
                self.masks.pop(id(t), None)   # cleared by MultiHeadAttention.call, as Keras does at run time
        elif type(op) in _OR_MERGES:
            if all(m is not None for m in masks):
                out = masks[0] if len(set(masks)) == 1 else self._new(
                    ctx, lines, " | ".join(masks), f"{type(op).__name__} ORs its inputs' masks")
        elif has_mask and (type(op) in (kl.Concatenate, kl.Dot) or
                           (_overrides_compute_mask(op) and type(op) not in _CONSUMERS)):
            raise ctx.fail("a masked input (the mask this layer passes on is not carried)")
        elif has_mask and getattr(op, "_call_has_mask_arg", False) and type(op) not in _CONSUMERS:
            raise ctx.fail("a masked input (Keras uses the mask in this layer's call; the porter does not)")
        elif type(op) in (kl.LSTM, kl.GRU, kl.SimpleRNN):
            out = masks[0] if op.return_sequences else None
        elif type(op) is kl.Bidirectional:
            out = masks[0] if op.return_sequences else None
        elif type(op) is kl.GlobalAveragePooling1D:
            out = None
        elif op.supports_masking:
            out = masks[0] if masks else None
        self._bind(node.outputs[0], out)
        return lines

    def _bind(self, tensor, mask: str | None) -> None:
        if mask is None:
            self.masks.pop(id(tensor), None)
        else:
            self.masks[id(tensor)] = mask

    def finish(self, outputs) -> list[str]:
        """Notes on the model's outputs that still carry a mask: Keras's fit weights the loss by it."""
        if any(id(t) in self.masks for t in outputs):
            return ["the model's output carries a Keras mask: Keras's fit and evaluate weight the loss by it "
                    "(masked steps count zero); the port returns the output only, so mask your loss the same way"]
        return []


def mask_of(ctx) -> str | None:
    """The mask a single-input layer (an RNN, GlobalAveragePooling1D) uses, as code: the tensor Keras
    recorded as its ``mask`` argument (``{x<i>}``: Keras records it when the call had one tensor
    argument, and computes it by the graph's own NotEqual/Any/LogicalOr nodes), else the mask the
    tracker followed (``ctx.masks``), else None."""
    recorded = ctx.node.kwargs.get("mask") if ctx.node is not None else None
    if recorded is not None:
        if not hasattr(recorded, "_keras_history"):
            raise ctx.fail("a constant mask argument (only a mask computed in the graph is ported)")
        return f"{{x{next(i for i, t in enumerate(ctx.node.inputs) if t is recorded)}}}"
    return ctx.masks[0] if ctx.masks else None
