"""LSTM, GRU, SimpleRNN and Bidirectional, on sequences (N, T, F) in Keras's layout (batch first).

torch's fused nn.LSTM, nn.GRU and nn.RNN compute Keras's cells exactly, given three things:

* gate order: the LSTM's is the same in both, (i, f, c, o) = torch's (i, f, g, o); Keras's GRU
  has (z, r, h), torch's (r, z, n), so the GRU's gate blocks are reordered;
* biases: torch adds two per gate (bias_ih + bias_hh). Keras's GRU with reset_after=True (the
  default) has two as well, its bias rows; Keras's LSTM and SimpleRNN have one: it goes in
  bias_ih, and bias_hh is held at zero and frozen (``runtime_recurrent.single_bias``), so that
  training moves the bias as Keras does;
* the GRU's reset_after=False puts the reset gate before the recurrent matrix, which nn.GRU
  cannot: a hand-written loop (``runtime_recurrent.GRUResetBefore``).

Keras's go_backwards reads the sequence from its end and returns the outputs in that reversed
order (``keras/src/backend/tensorflow/rnn.py``); Bidirectional flips the backward layer's outputs
back to the input's order, which is how torch's bidirectional modules return them. A masked input
(``l2compare.porter.masks``) runs the step loop ``runtime_recurrent.masked_rnn``, a gap like padding.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import layers as kl

from l2compare.porter.layers.registry import Ctx, Penalty, Port, register, regularizer_terms
from l2compare.porter.errors import PortError
from l2compare.porter.masks import mask_of
from l2compare.porter.runtime.recurrent import GRUResetBefore, masked_rnn, sequence_dropout, single_bias

_TORCH = {kl.LSTM: "LSTM", kl.GRU: "GRU", kl.SimpleRNN: "RNN"}
_REGULARIZED = (("kernel", "kernel_regularizer"), ("recurrent_kernel", "recurrent_regularizer"),
                ("bias", "bias_regularizer"))


def _value(variable) -> np.ndarray:
    return np.array(keras.ops.convert_to_numpy(variable), copy=True)


def _fail(ctx: Ctx, layer, what: str) -> PortError:
    """The PortError for ``ctx.layer``, naming ``layer`` when it is a Bidirectional's sublayer."""
    return ctx.fail(what if layer is ctx.layer else f"its {layer.name!r} ({type(layer).__name__}): {what}")


def _activation_name(fn) -> str: return getattr(fn, "__name__", str(fn))  # noqa: E704


def _check(ctx: Ctx, layer) -> None:
    """Refuse whatever of ``layer`` (ctx.layer, or a Bidirectional's sublayer) is not exact."""
    if type(layer) not in _TORCH:
        raise _fail(ctx, layer, "only LSTM, GRU and SimpleRNN are ported inside Bidirectional")
    cell = layer.cell
    if layer.stateful:
        raise _fail(ctx, layer, "stateful=True (the state carried from one batch to the next is not ported)")
    if layer.return_state:
        raise _fail(ctx, layer, "return_state=True (only the output is ported)")
    tanh, sigmoid, relu = (keras.activations.get(name) for name in ("tanh", "sigmoid", "relu"))
    if type(layer) is kl.SimpleRNN:
        if cell.activation not in (tanh, relu):
            raise _fail(ctx, layer, f"activation {_activation_name(cell.activation)!r} (nn.RNN has tanh and relu)")
    elif cell.activation is not tanh or cell.recurrent_activation is not sigmoid:
        raise _fail(ctx, layer, f"activation {_activation_name(cell.activation)!r} with recurrent_activation "
                                f"{_activation_name(cell.recurrent_activation)!r} (ported: tanh with sigmoid, "
                                "the cell torch computes)")
    if cell.recurrent_dropout:
        raise _fail(ctx, layer, f"recurrent_dropout={cell.recurrent_dropout} (a mask on the state at every step: "
                                "torch's fused cells have none)")
    if cell.dropout >= 1.0:
        raise _fail(ctx, layer, f"dropout={cell.dropout} (Keras skips a rate of 1 in training)")
    if cell.dropout and getattr(cell, "implementation", 2) == 1:
        raise _fail(ctx, layer, "dropout with implementation=1 (a separate input mask for each gate)")


def _check_sublayer(ctx: Ctx, layer) -> None:
    """What the code generator checks on a top-level layer, for a Bidirectional's sublayer."""
    _check(ctx, layer)
    for attr in ("kernel_constraint", "recurrent_constraint", "bias_constraint"):
        if getattr(layer, attr, None) is not None:
            raise _fail(ctx, layer, f"{attr} (constraints are not carried)")
    if layer.activity_regularizer is not None:
        raise _fail(ctx, layer, "activity_regularizer on a sublayer (only the Bidirectional's own is carried)")


def _reset_before(layer) -> bool:
    return type(layer) is kl.GRU and not layer.cell.reset_after


def _gru_order(a: np.ndarray, units: int) -> np.ndarray:
    """Keras's GRU gate blocks (z, r, h) along the first axis -> torch's (r, z, n)."""
    return np.concatenate([a[units:2 * units], a[:units], a[2 * units:]])


def _torch_weights(layer) -> dict[str, np.ndarray]:
    """The layer's current weights under torch's names (no layer suffix), in torch's layout."""
    cell, units = layer.cell, layer.cell.units
    gru = type(layer) is kl.GRU

    def order(a):
        return _gru_order(a, units) if gru else a

    # Keras's kernels are (in, gates·units); torch's weights are (gates·units, in).
    out = {"weight_ih": order(_value(cell.kernel).T), "weight_hh": order(_value(cell.recurrent_kernel).T)}
    if cell.use_bias:
        bias = _value(cell.bias)
        if gru and cell.reset_after:        # (2, 3u): the input's bias, then the state's
            out["bias_ih"], out["bias_hh"] = order(bias[0]), order(bias[1])
        else:
            out["bias_ih"] = order(bias)
            if not gru:
                out["bias_hh"] = np.zeros_like(bias)   # held at zero and frozen by single_bias
    return out


def _bias_targets(layer) -> list[str]:
    return ["bias_ih", "bias_hh"] if type(layer) is kl.GRU and layer.cell.reset_after else ["bias_ih"]


def _terms(ctx: Ctx, layer, attr: str) -> list[tuple[str, float]]:
    try:
        return regularizer_terms(layer, attr)
    except PortError:
        if layer is ctx.layer:
            raise
        raise _fail(ctx, layer, f"{attr} {type(getattr(layer, attr)).__name__} "
                                "(only L1, L2 and L1L2 are carried)") from None


def _penalties(ctx: Ctx, layer, module: str, suffix: str, keras_path: str) -> list[Penalty]:
    """Keras's penalties on ``layer``'s weights, on the torch parameters that hold them."""
    found = []
    for weight, attr in _REGULARIZED:
        if weight == "bias" and not layer.cell.use_bias:
            continue
        targets = _bias_targets(layer) if weight == "bias" else [{"kernel": "weight_ih"}.get(weight, "weight_hh")]
        for kind, lam in _terms(ctx, layer, attr):
            # Σ over a GRU's (2, 3u) bias is the sum over its two torch halves: one term each.
            found += [Penalty(f"{module}.{t}{suffix}", kind, lam, f"{keras_path}/{weight}") for t in targets]
    return found


def _constructor(layer, input_size: int, bidirectional: bool = False) -> tuple[str, tuple]:
    """The torch module for ``layer`` (both directions when ``bidirectional``), and the helpers it uses."""
    cell = layer.cell
    if _reset_before(layer):
        return f"GRUResetBefore({input_size}, {cell.units}{'' if cell.use_bias else ', bias=False'})", \
            (GRUResetBefore,)
    args = [str(input_size), str(cell.units)]
    if type(layer) is kl.SimpleRNN and cell.activation is keras.activations.get("relu"):
        args.append('nonlinearity="relu"')
    if not cell.use_bias:
        args.append("bias=False")
    args.append("batch_first=True")
    if bidirectional:
        args.append("bidirectional=True")
    source = f"nn.{_TORCH[type(layer)]}({', '.join(args)})"
    if cell.use_bias and type(layer) is not kl.GRU:
        return f"single_bias({source})", (single_bias,)
    return source, ()


def _suffix(layer, reverse: bool = False) -> str:   # nn.LSTM's "_l0" ("_l0_reverse"); GRUResetBefore: none
    return "" if _reset_before(layer) else ("_l0_reverse" if reverse else "_l0")


def _notes(layer, name: str, mask: str | None = None) -> list[str]:
    cell, notes = layer.cell, []
    if mask is not None:
        notes.append(f"{name}: Keras's mask carried by a step loop (masked_rnn): a masked step keeps the state and "
                     + ("outputs zeros (zero_output_for_mask)" if layer.zero_output_for_mask else "repeats the "
                        "previous output") + "; gaps in the middle are masked steps like the padding")
    if type(layer) is kl.GRU:
        how = ("reset_after=False as a hand-written loop (GRUResetBefore: nn.GRU applies the reset gate after "
               "the recurrent matrix)" if not cell.reset_after else
               "reset_after=True as nn.GRU, Keras's two bias rows as bias_ih and bias_hh")
        notes.append(f"{name}: gates reordered from Keras's (z, r, h) to torch's (r, z, n); {how}")
    elif cell.use_bias:
        notes.append(f"{name}: Keras's single bias in bias_ih; bias_hh held at zero and frozen (single_bias)")
    if cell.dropout:
        notes.append(f"{name}: dropout({cell.dropout}) on the inputs with one mask per sequence, as Keras's "
                     "(sequence_dropout): identity at inference, a different random mask in training")
    if layer.go_backwards and name == layer.name:
        notes.append(f"{name}: go_backwards reads the sequence from its end" + (
            "; its outputs come in that reversed order, as Keras returns them" if layer.return_sequences else ""))
    return notes


def _run(ctx: Ctx, layer, module: str, mask: str | None) -> tuple[str, tuple]:
    """The expression for ``layer``'s outputs (N, T, H) run by torch module ``module``, and helpers: its
    input flipped for go_backwards, with input dropout; with a Keras mask, the step loop ``masked_rnn``
    (the mask flipped with the input)."""
    source, helpers = "{x}.flip(1)" if layer.go_backwards else "{x}", ()
    if layer.cell.dropout:
        source, helpers = f"sequence_dropout({source}, {layer.cell.dropout!r}, self.training)", (sequence_dropout,)
    if mask is None:
        return f"self.{module}({source})[0]", helpers
    if layer.unroll and layer.go_backwards and layer.zero_output_for_mask:
        # Keras's unrolled loop zeroes the reversed outputs with the unreversed mask.
        raise _fail(ctx, layer, "unroll=True with go_backwards and zero_output_for_mask on a masked input")
    flipped = f"{mask}.flip(1)" if layer.go_backwards else mask
    return (f"masked_rnn(self.{module}, {source}, {flipped}, {bool(layer.zero_output_for_mask)!r}, "
            f"{_suffix(layer)!r})[0]", helpers + (masked_rnn,))


def _check_call(ctx: Ctx) -> None:
    node = getattr(ctx, "node", None)
    kwargs = node.kwargs if node is not None else {}
    if kwargs.get("initial_state") is not None or len(ctx.shapes) != 1 + (kwargs.get("mask") is not None):
        raise ctx.fail("initial_state (only the zero initial state is ported)")
    if len(ctx.shape) != 2:
        raise ctx.fail(f"input shape {ctx.shape} (a sequence (N, T, F) is ported)")


@register(kl.LSTM, kl.GRU, kl.SimpleRNN, layout="keras")
def recurrent(ctx: Ctx) -> Port:
    layer, attr = ctx.layer, ctx.attr
    _check_call(ctx)
    _check(ctx, layer)
    mask = mask_of(ctx)
    constructor, helpers = _constructor(layer, ctx.shape[-1])
    call, more = _run(ctx, layer, attr, mask)
    if layer.return_sequences:
        lines = [f"{{y}} = {call}"]
    else:
        lines = [f"{{y}} = {call}[:, -1]  # the last step's output (return_sequences=False)"]
    suffix = _suffix(layer)

    def state():
        return {f"{attr}.{name}{suffix}": a for name, a in _torch_weights(layer).items()}

    return Port(ctx.out_shape, lines, modules={attr: constructor}, state=state,
                penalties=_penalties(ctx, layer, attr, suffix, layer.name),
                notes=_notes(layer, layer.name, mask),
                helpers=helpers + more)


def _merge(mode: str, a: str, b: str) -> str:
    return {"concat": f"torch.cat([{a}, {b}], dim=-1)", "sum": f"{a} + {b}", "ave": f"({a} + {b}) / 2",
            "mul": f"{a} * {b}"}[mode]


@register(kl.Bidirectional, layout="keras")
def bidirectional(ctx: Ctx) -> Port:
    layer, attr = ctx.layer, ctx.attr
    _check_call(ctx)
    forward, backward = layer.forward_layer, layer.backward_layer
    _check_sublayer(ctx, forward)
    _check_sublayer(ctx, backward)
    if forward.go_backwards or not backward.go_backwards:
        raise ctx.fail("a forward layer with go_backwards=True (ported: forward reads from the start, backward "
                       "from the end)")
    mode = layer.merge_mode
    if mode not in ("concat", "sum", "ave", "mul"):
        raise ctx.fail(f"merge_mode {mode!r} (two outputs; ported: concat, sum, ave, mul)")
    size = ctx.shape[-1]
    forward_source, helpers = _constructor(forward, size)
    mask = mask_of(ctx)
    fused = (forward_source == _constructor(backward, size)[0] and not _reset_before(forward)
             and not forward.cell.dropout and not backward.cell.dropout and mask is None)
    notes = _notes(forward, layer.name)
    if notes != _notes(backward, layer.name):   # one note for both directions when they are alike
        notes = _notes(forward, f"{layer.name}/{forward.name}") + _notes(backward, f"{layer.name}/{backward.name}")
    notes.append(f"{layer.name}: merge_mode {mode!r}" + (", the backward outputs flipped back to the input's time "
                                                         "order" if layer.return_sequences else " of each direction's "
                                                         "last step"))
    if fused:
        units = forward.cell.units
        modules = {attr: _constructor(forward, size, bidirectional=True)[0]}
        parts = [(forward, attr, "_l0"), (backward, attr, "_l0_reverse")]
        lines = [f"{{y}}, _ = self.{attr}({{x}})  # (N, T, 2·{units}): forward | backward, both in the input's "
                 "time order"]
        if layer.return_sequences and mode != "concat":
            lines.append("{y} = " + _merge(mode, f"{{y}}[..., :{units}]", f"{{y}}[..., {units}:]")
                         + f"  # merge_mode {mode!r}")
        elif not layer.return_sequences:
            lines.append("{y} = " + _merge(mode, f"{{y}}[:, -1, :{units}]", f"{{y}}[:, 0, {units}:]")
                         + "  # each direction's last step (the backward one's is at t = 0)")
    else:
        backward_source, more = _constructor(backward, size)
        helpers += more
        modules = {f"{attr}_forward": forward_source, f"{attr}_backward": backward_source}
        parts = [(forward, f"{attr}_forward", _suffix(forward)), (backward, f"{attr}_backward", _suffix(backward))]
        (a, more_a), (b, more_b) = _run(ctx, forward, f"{attr}_forward", mask), \
            _run(ctx, backward, f"{attr}_backward", mask)
        helpers += more_a + more_b
        notes += _notes(forward, layer.name, mask)[:1] if mask is not None else []
        if layer.return_sequences:
            lines = ["{y} = " + _merge(mode, a, b + ".flip(1)") + "  # the backward outputs back in the input's order"]
        else:
            lines = ["{y} = " + _merge(mode, a + "[:, -1]", b + "[:, -1]") + "  # each direction's last step"]

    def state():
        merged = {}
        for sub, module, suffix in parts:
            merged.update({f"{module}.{name}{suffix}": a for name, a in _torch_weights(sub).items()})
        return merged

    penalties = [p for sub, module, suffix in parts
                 for p in _penalties(ctx, sub, module, suffix, f"{layer.name}/{sub.name}")]
    unique_helpers = tuple(dict.fromkeys(helpers))
    return Port(ctx.out_shape, lines, modules=modules, state=state, penalties=penalties, notes=notes,
                helpers=unique_helpers)
