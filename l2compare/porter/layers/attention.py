"""MultiHeadAttention, and Masking (the layer that makes a mask; ``l2compare.porter.masks`` follows it).

Keras's MultiHeadAttention is four EinsumDense projections around a dot-product attention. Their
kernels are kept in Keras's layout and the projections written as einsums, so the file reads as
Keras computes (``keras/src/layers/attention/multi_head_attention.py``):

    query (dim_q, heads, key_dim)  key (dim_k, heads, key_dim)  value (dim_v, heads, value_dim)
    attention_output (heads, value_dim, *output_shape); biases: the kernels' trailing axes.

``key_dim`` and ``value_dim`` are free (not dim/heads); ``output_shape`` defaults to the query's
last axis. Scores are (N, heads, T, S). The mask is Keras's polarity, True = attend (torch's
boolean attn_mask is the opposite), built as ``_compute_attention_mask`` builds it: the query's
Keras mask (N, T, 1) & the value's (N, 1, S) & the key's & the causal triangle & ``attention_mask``.
Masked scores are *replaced* by a large finite number, so a fully masked row is uniform, as in
Keras, where torch's -inf would give NaN. Keras takes one of two paths, both written out:

* ``dropout == 0`` (TensorFlow's ``dot_product_attention``): scores = (q·k)·scale, fill
  -0.7·3.38953e38;
* ``dropout > 0``: scores = (q·scale)·k, fill -1e9, dropout on the probabilities in training.
"""
from __future__ import annotations

import math

import keras
import numpy as np
from keras import layers as kl

from l2compare.porter.layers.registry import Ctx, Penalty, Port, register, regularizer_terms

_DOT_FILL = -0.7 * 3.38953e38   # keras/src/backend/tensorflow/nn.py _get_large_negative (float32 and float64)
_SOFTMAX_FILL = -1e9            # keras/src/layers/activations/softmax.py _large_negative_number
_PROJECTIONS = (("query", "btd,dnh->btnh"), ("key", "bsd,dnh->bsnh"), ("value", "bsd,dnh->bsnh"))


def _roles(ctx: Ctx) -> dict[str, int]:
    """The index in the node's inputs of query, value, key and attention_mask (the ones given)."""
    node, names = ctx.node, ("query", "value", "key")
    given = dict(zip(names, node.args))
    given.update({k: v for k, v in node.kwargs.items() if k in names + ("attention_mask",)})
    found = {}
    for role, tensor in given.items():
        if tensor is None:
            continue
        if not hasattr(tensor, "_keras_history"):
            raise ctx.fail(f"{role} given as a constant (only tensors of the graph are ported)")
        found[role] = next(i for i, t in enumerate(node.inputs) if t is tensor)
    return found


def _check(ctx: Ctx) -> None:
    layer, kwargs = ctx.layer, ctx.node.kwargs
    explicit = [k for k in ("query_mask", "value_mask", "key_mask") if kwargs.get(k) is not None]
    if explicit:   # Keras reads the query's own mask and would AND these in: not carried
        raise ctx.fail(f"{', '.join(explicit)} passed to its call (ported: the masks riding on the inputs)")
    if kwargs.get("return_attention_scores"):
        raise ctx.fail("return_attention_scores=True (two outputs)")
    if layer._use_gate:
        raise ctx.fail("use_gate=True (the gated variant is not ported)")
    if layer._sliding_window is not None:
        raise ctx.fail(f"sliding_window={layer._sliding_window}")
    if layer._activity_regularizer is not None:   # handed to the four projections, not to the layer itself
        raise ctx.fail("activity_regularizer (Keras applies it to each of the four projections' outputs)")
    if any(len(s) != 2 for s in ctx.shapes if s):
        raise ctx.fail(f"inputs of shapes {ctx.shapes} (ported: sequences (N, T, dim))")
    if tuple(layer._attention_axes) != (1,):
        raise ctx.fail(f"attention_axes={layer._attention_axes} (ported: the default, attention over the sequence "
                       "axis of (N, T, dim) inputs)")


def _scale(key_dim: int, dtype: str) -> float:
    """1/√key_dim as Keras multiplies by it: a Python float cast to the dtype (on TensorFlow,
    through float32 first, as ``registry.applied`` explains)."""
    scale = 1.0 / math.sqrt(float(key_dim))   # a Python float, as MultiHeadAttention computes it
    return float(keras.ops.convert_to_numpy(keras.ops.cast(scale, dtype)))


def _mask_lines(ctx: Ctx, roles: dict, inputs: dict, proj: dict, causal: bool) -> tuple[list[str], str | None]:
    """Lines building ``{attr}_attend`` (N or 1, 1, T, S), True = attend, or None when nothing masks."""
    masks = ctx.masks or [None] * len(ctx.shapes)
    parts = []
    if masks[roles["query"]] is not None:
        parts.append(f"{masks[roles['query']]}[:, None, :, None]")   # the query's mask (N, 1, T, 1)
    if masks[roles["value"]] is not None:
        parts.append(f"{masks[roles['value']]}[:, None, None, :]")   # the value's (N, 1, 1, S)
    if "key" in roles and roles["key"] != roles["value"] and masks[roles["key"]] is not None:
        parts.append(f"{masks[roles['key']]}[:, None, None, :]")     # the key's, when key is not value
    if causal:
        parts.append(f"torch.ones({proj['query']}.shape[1], {proj['key']}.shape[1], dtype=torch.bool, "
                     f"device={proj['query']}.device).tril()")        # (T, S): step t sees s <= t
    if "attention_mask" in roles:
        parts.append(f"{inputs['attention_mask']}.bool()[:, None]")   # (N, 1, T, S); nonzero = attend
    if not parts:
        return [], None
    name = f"{ctx.attr}_attend"
    return [f"{name} = " + " & ".join(parts) + "  # Keras's polarity: True = attend"], name


@register(kl.MultiHeadAttention, layout="keras")
def multi_head_attention(ctx: Ctx) -> Port:
    layer, attr = ctx.layer, ctx.attr
    _check(ctx)
    roles = _roles(ctx)
    inputs = {role: f"{{x{i}}}" for role, i in roles.items()}
    inputs.setdefault("key", inputs["value"])
    heads, value_dim = layer.num_heads, layer.value_dim
    causal = bool(ctx.node.kwargs.get("use_causal_mask", False))
    lines, proj = [], {}
    for role, equation in _PROJECTIONS:
        proj[role] = f"{attr}_{role}"
        bias = f" + self.{attr}['{role}_bias']" if layer.use_bias else ""
        axes = "N, T" if role == "query" else "N, S"
        lines.append(f"{proj[role]} = torch.einsum('{equation}', {inputs[role]}, self.{attr}['{role}_kernel'])"
                     f"{bias}  # ({axes}, heads, {'value_dim' if role == 'value' else 'key_dim'})")
    more, attend = _mask_lines(ctx, roles, inputs, proj, causal)
    lines += more
    scale, s = _scale(layer.key_dim, ctx.dtype), f"{attr}_scores"
    q, k, v = proj["query"], proj["key"], proj["value"]
    if layer.dropout:
        lines.append(f"{s} = torch.einsum('bsnh,btnh->bnts', {k}, {q} * {scale!r})  # (N, heads, T, S)")
    else:
        lines.append(f"{s} = torch.einsum('btnh,bsnh->bnts', {q}, {k}) * {scale!r}  # (N, heads, T, S)")
    if attend:
        fill = _SOFTMAX_FILL if layer.dropout else _DOT_FILL
        lines.append(f"{s} = {s}.masked_fill(~{attend}, {fill!r})  # replaced, not added: a fully masked "
                     "row is uniform, as in Keras")
    lines.append(f"{s} = torch.softmax({s}, dim=-1)")
    if layer.dropout:
        lines.append(f"{s} = F.dropout({s}, {float(layer.dropout)!r}, self.training)")
    lines.append(f"{{y}} = torch.einsum('bnts,bsnh->btnh', {s}, {v})  # (N, T, heads, value_dim)")
    out_shape = tuple(ctx.out_shape[1:])
    kernel, bias = f"self.{attr}['attention_output_kernel']", f"self.{attr}['attention_output_bias']"
    if len(out_shape) > 1:   # output_shape of several axes: flattened for the einsum, restored after
        kernel, bias = f"{kernel}.reshape({heads}, {value_dim}, -1)", f"{bias}.reshape(-1)"
    lines.append(f"{{y}} = torch.einsum('btnh,nho->bto', {{y}}, {kernel})"
                 + (f" + {bias}" if layer.use_bias else "") + "  # (N, T, out)")
    if len(out_shape) > 1:
        lines.append(f"{{y}} = {{y}}.reshape({{y}}.shape[0], {{y}}.shape[1], {', '.join(map(str, out_shape))})"
                     "  # Keras's output_shape")
    return _port(ctx, lines, causal)


def _port(ctx: Ctx, lines: list[str], causal: bool) -> Port:
    layer, attr = ctx.layer, ctx.attr
    denses = [("query", layer._query_dense), ("key", layer._key_dense), ("value", layer._value_dense),
              ("attention_output", layer._output_dense)]
    weights = {f"{n}_{w}": (d, w) for n, d in denses for w in ("kernel", "bias") if w == "kernel" or layer.use_bias}
    params = ", ".join(f"'{k}': nn.Parameter(torch.zeros({', '.join(str(int(n)) for n in getattr(d, w).shape)}))"
                       for k, (d, w) in weights.items())
    regs = []   # each projection is an EinsumDense with the layer's kernel and bias regularizers
    for key, (dense, w) in weights.items():
        regs += [Penalty(f"{attr}.{key}", kind, lam, f"{layer.name}/{dense.name}/{w}")
                 for kind, lam in regularizer_terms(dense, f"{w}_regularizer")]

    def state():
        return {f"{attr}.{k}": np.array(keras.ops.convert_to_numpy(getattr(d, w)), copy=True)
                for k, (d, w) in weights.items()}

    note = (f"{layer.name}: MultiHeadAttention as einsums over Keras's kernels (query/key/value (dim, heads, "
            f"key_dim|value_dim), output (heads, value_dim, out)), heads={layer.num_heads}, key_dim={layer.key_dim}, "
            f"value_dim={layer.value_dim}; masks in Keras's polarity (True = attend), masked scores replaced by "
            f"{_SOFTMAX_FILL if layer.dropout else _DOT_FILL:.5g} (a fully masked row is uniform, not NaN)"
            + ("; causal" if causal else "")
            + (f"; dropout({layer.dropout}) on the attention probabilities in training, torch's random stream"
               if layer.dropout else ""))
    return Port(ctx.out_shape, lines, modules={attr: f"nn.ParameterDict({{{params}}})"}, state=state,
                penalties=regs, notes=[note])


@register(kl.Masking, layout="keras")
def masking(ctx: Ctx) -> Port:
    value = float(ctx.layer.mask_value)
    # Keras: where(any(x != v, -1, keepdims), x, 0); the mask itself is written by l2compare.porter.masks.
    return Port(ctx.out_shape, [f"{{y}} = torch.where(({{x}} != {value!r}).any(dim=-1, keepdim=True), {{x}}, 0)"
                                f"  # Masking({value}): padded steps set to 0"])
