"""Write the torch port of a Keras model as a standalone Python file's source.

The file imports only torch. It holds the module (Keras's layer names as attribute names), a
``build()`` that loads the weights saved next to it, ``l2_penalty(model)``, ``param_groups(model)``
and a comment block on what was carried. Each layer's code comes from its porter
(``l2compare.porter.layers.registry``); this module orders the nodes, names the variables, moves tensors between
Keras's layout and channels first where a layer needs it, and assembles the file.
"""
from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field

import keras
import numpy as np
from torch import nn

import l2compare.porter.layers  # noqa: F401  (importing the package registers every layer family)
from l2compare.porter.layers.registry import Ctx, Penalty, check_constraints, freeze, porter_for, regularizer_terms
from l2compare.porter.errors import PortError
from l2compare.porter import nesting, source_parts, tracing
from l2compare.porter.graph import dtype_of, walk
from l2compare.porter.masks import Tracker

# Every family registers its porters (l2compare.porter.layers.registry.register) when imported.
_RESERVED = {"self", "torch", "nn", "F", "os", "x", "model", "activity"}


@dataclass
class Generated:
    """The source of the port and what is needed to check or load it."""

    source: str
    class_name: str
    dtype: str
    penalties: list[Penalty]
    returns_logits: bool
    states: list = field(default_factory=list)   # each layer's Port.state

    def state(self) -> dict[str, np.ndarray]:
        """The Keras model's current weights, keyed and laid out as the torch module's state dict."""
        merged = {}
        for read in self.states:
            merged.update(read())
        return merged


def identifier(name: str, taken: set) -> str:
    """A Python identifier for a Keras name, unique, and not shadowing an nn.Module attribute."""
    ident = re.sub(r"\W", "_", name)
    if not ident or ident[0].isdigit():
        ident = "layer_" + ident
    if keyword.iskeyword(ident) or hasattr(nn.Module, ident) or ident in _RESERVED:
        ident += "_"
    base, n = ident, 1
    while ident in taken:
        n += 1
        ident = f"{base}_{n}"
    taken.add(ident)
    return ident


def class_name(model_name: str) -> str:
    words = re.findall(r"[A-Za-z0-9]+", model_name) or ["Ported"]
    name = "".join(w[:1].upper() + w[1:] for w in words)
    name = name if name[0].isalpha() else "Model" + name
    return "Ported" + name if hasattr(nn, name) else name  # not nn.Sequential's name


def _shape(tensor) -> tuple:
    return tuple(int(d) if d is not None else -1 for d in tensor.shape[1:])


def _permutation(rank: int, to: str) -> tuple[int, ...]:
    if to == "cf":
        return (0, rank - 1, *range(1, rank - 1))
    return (0, *range(2, rank), 1)


def _is_softmax_output(operation) -> bool:
    """A final softmax over the last axis, which a loss on logits can take over. Whether the port
    really left it out is the porter's word (``ctx.folded``): a layer whose porter does not fold
    keeps its softmax, and the model then returns probabilities."""
    from keras import layers as kl

    if type(operation) is kl.Softmax:
        return operation.axis in (-1,) and len(operation._inbound_nodes[0].arguments.keras_tensors) == 1
    return getattr(getattr(operation, "activation", None), "__name__", "") == "softmax"


class _Writer:
    """Variable names and layouts while the forward pass is written, node by node."""

    def __init__(self, graph, taken: set):
        self.lines: list[str] = []
        self.taken = taken
        self.vars: dict[int, dict[str, str]] = {}     # tensor id -> layout -> variable
        self.uses: dict[int, int] = {}
        for node in graph.nodes:
            for t in {id(t) for t in node.inputs}:
                self.uses[t] = self.uses.get(t, 0) + 1
        for t in graph.outputs:
            self.uses[id(t)] = self.uses.get(id(t), 0) + 1

    def bind(self, tensor, var: str, layout: str) -> None:
        self.vars[id(tensor)] = {layout: var}

    def read(self, tensor, layout: str) -> str:
        """The variable holding ``tensor`` in ``layout`` ("keras", "cf" or "any"), permuting if needed."""
        have = self.vars[id(tensor)]
        if layout == "any" or layout in have:
            return have[layout] if layout in have else next(iter(have.values()))
        rank = len(tensor.shape)
        source_layout, var = next(iter(have.items()))
        if rank <= 2:
            have[layout] = var   # (N, C): both layouts are the same
            return var
        last_use = self.uses[id(tensor)] == 1
        target = var if last_use else identifier(f"{var}_{layout}", self.taken)
        why = "Keras's channels last -> torch's channels first" if layout == "cf" else \
            "back to Keras's channels last"
        self.lines.append(f"{target} = {var}.permute{_permutation(rank, layout)}  # {why}")
        if last_use:
            have.clear()
        have[layout] = target
        return target

    def consume(self, tensors) -> list[str]:
        """Variables freed by this node (their tensor has no later reader)."""
        freed = []
        for t in {id(t): t for t in tensors}.values():
            self.uses[id(t)] -= 1
            if self.uses[id(t)] == 0:
                freed.extend(self.vars[id(t)].values())
        return freed


@dataclass
class _Body:
    """One generated nn.Module class: the model's, or a nested model's (``nesting``)."""

    cls: str
    inputs: list
    modules: dict
    lines: list
    outputs: list
    penalties: list
    notes: list
    states: list
    helpers: list
    has_activity: bool
    returns_logits: bool
    classes: list          # the source of the nested models' classes it uses, inner first

    def state(self) -> dict[str, np.ndarray]:
        return Generated.state(self)


def generate(model, *, weights_file: str = "model_torch_weights.pt") -> Generated:
    """The standalone torch source for ``model``, or a PortError naming what cannot be ported."""
    model = tracing.traced(model)   # a subclassed model's call() and Lambdas as graphs of layers and ops
    walk(model)   # a model with no graph (unbuilt) is refused before anything reads its inputs
    dtype = dtype_of(model)
    body = _body(model, dtype, {"names": set(), "bodies": {}}, top=True)
    source = source_parts.assemble(model=model, cls=body.cls, inputs=body.inputs, modules=body.modules,
                                   lines=body.lines, outputs=body.outputs, penalties=body.penalties,
                                   notes=body.notes, helpers=body.helpers, dtype=dtype, fold=body.returns_logits,
                                   has_activity=body.has_activity, weights_file=weights_file,
                                   classes=body.classes)
    return Generated(source, body.cls, dtype, body.penalties, body.returns_logits, body.states)


def _body(model, dtype: str, seen: dict, top: bool = False) -> _Body:
    """The class of ``model`` (the outer one, ``top``, or a nested one: ``seen`` holds the class names
    taken and the bodies already written, so a model used twice is one class and one submodule)."""
    graph = walk(model)
    taken: set = set()
    writer = _Writer(graph, taken)
    input_names = []
    for t in graph.inputs:
        name = "x" if len(graph.inputs) == 1 else identifier(getattr(t, "name", "x") or "x", taken)
        input_names.append(name)
        writer.bind(t, name, "keras")
    taken.add("x")
    fold = top and len(graph.outputs) == 1 and _is_softmax_output(graph.outputs[0]._keras_history[0]) \
        and writer.uses[id(graph.outputs[0])] == 1
    modules, penalties, notes, states, helpers, classes = {}, [], [], [], [], []
    masks = Tracker(identifier, taken)   # Keras's masks, followed as Keras runs the model
    has_activity, returns_logits = False, False
    called: dict[int, tuple[str, str, dict]] = {}   # id(layer) -> (attribute, layout, modules): shared layers
    for node in graph.nodes:
        op = node.operation
        nested = isinstance(op, keras.Model)
        port_fn, wants = (None, "keras") if nested else porter_for(op)
        if len(node.outputs) != 1:
            raise PortError(f"layer {op.name!r} ({type(op).__name__}) has {len(node.outputs)} outputs; "
                            "only single-output layers are ported")
        if any(id(t) not in writer.vars for t in node.inputs):   # e.g. a Keras mask: no port carries it
            raise PortError(f"layer {op.name!r} ({type(op).__name__}) reads a tensor the port does not compute "
                            "(a mask?); masking is not carried")
        again = called.get(id(op))
        # A layer called again is the same submodule (one set of weights), its inputs in the same layout.
        attr = again[0] if again else identifier(op.name, taken)
        variables, layout = _read_inputs(writer, node, again[1] if again and wants == "any" else wants)
        ctx = Ctx(op, attr, [_shape(t) for t in node.inputs], _shape(node.outputs[0]), layout, dtype, node=node,
                  fold_softmax=fold and node.outputs[0] is graph.outputs[0])
        ctx.masks = masks.inputs(node)
        if nested:
            if id(op) not in seen["bodies"]:   # one class per nested model, however often it is called
                seen["bodies"][id(op)] = _body(op, dtype, seen)
            inner = seen["bodies"][id(op)]
            port, inner_activity = nesting.port_model(ctx, inner)
            has_activity = has_activity or inner_activity
            classes.extend(c for c in inner.classes if c not in classes)
            classes.extend(c for c in [nesting.class_source(op, inner)] if c not in classes)
        else:
            if isinstance(op, keras.layers.Layer):   # a keras.ops node is an Operation, with no constraints
                check_constraints(ctx)
            port = port_fn(ctx)
            port.modules, port.penalties = freeze(ctx, port.modules, port.penalties)
        returns_logits = returns_logits or ctx.folded
        freed = writer.consume(node.inputs)
        out_layout = port.layout or layout
        if len(node.outputs[0].shape) <= 2:
            out_layout = "keras"
        # Output variable: the input's, when this node was its last reader (a chain reads x = f(x));
        # else the layer's name (unique: attributes and variables live in different namespaces).
        y = freed[0] if (len(node.inputs) == 1 and variables[0] in freed) else \
            (identifier(f"{attr}_call", taken) if again else attr)
        fields = {"x": variables[0] if variables else "", "y": y}
        fields.update({f"x{i}": v for i, v in enumerate(variables)})
        writer.lines.extend(masks.step(ctx, node, variables))   # before: the output may reuse an input's name
        writer.lines.extend(line.format(**fields) for line in port.forward)
        writer.bind(node.outputs[0], y, out_layout)
        activity = _activity(op, y)   # Keras adds an activity term per call
        if activity:
            has_activity = True
            writer.lines.extend(activity[0])
            notes.append(activity[1])
        if again:
            if port.modules != again[2]:
                raise PortError(f"layer {op.name!r} ({type(op).__name__}) is called twice with inputs of "
                                "different shapes; one torch module cannot serve both")
            continue   # Keras counts a shared weight's regularizer once (Layer.losses: trainable_weights)
        called[id(op)] = (attr, layout, port.modules)
        modules.update(port.modules)
        penalties.extend(port.penalties)
        notes.extend(port.notes)
        states.append(port.state)
        helpers.extend(h for h in port.helpers if h not in helpers)
    outputs = [writer.read(t, "keras") for t in graph.outputs]
    notes.extend(masks.finish(graph.outputs))
    cls = class_name(model.name)
    while cls in seen["names"]:
        cls += "_"
    seen["names"].add(cls)
    return _Body(cls, input_names, modules, writer.lines, outputs, penalties, notes, states, helpers,
                 has_activity, returns_logits, classes)


def _read_inputs(writer: _Writer, node, wants: str) -> tuple[list[str], str]:
    """The node's input variables in the layout its porter takes, and that layout. An "any" porter
    gets its inputs as they are when they agree (channels first stays channels first); inputs of
    mixed layouts, or of different ranks (broadcasting aligns trailing axes), go to Keras's layout."""
    if wants == "any" and len({len(t.shape) for t in node.inputs}) > 1:
        wants = "keras"
    variables = [writer.read(t, wants) for t in node.inputs]
    if wants != "any":
        return variables, wants
    layouts = {next(k for k, v in writer.vars[id(t)].items() if v == var) for t, var in zip(node.inputs, variables)}
    if layouts == {"cf"}:
        return variables, "cf"
    return [writer.read(t, "keras") for t in node.inputs], "keras"


def _activity(op, y: str):
    """(forward lines, note) adding ``op``'s activity regularizer on output ``y``, or None."""
    terms = regularizer_terms(op, "activity_regularizer") if isinstance(op, keras.layers.Layer) else []
    if not terms:
        return None
    divide = f" / {y}.shape[0]" if _divides_activity_by_batch() else ""
    lines = [f"activity = activity + {lam!r} * {y}.{'square' if kind == 'l2' else 'abs'}().sum(){divide}"
             f"  # {op.name}: activity_regularizer {kind.upper()}" for kind, lam in terms]
    note = (f"{op.name}: activity_regularizer ({', '.join(k.upper() for k, _ in terms)}) "
            + ("divided by the batch size, as Keras >= 3.14 does" if _divides_activity_by_batch()
               else "summed over the batch, as Keras < 3.14 does"))
    return lines, note


def _divides_activity_by_batch() -> bool:
    major, minor = (int(p) for p in keras.__version__.split(".")[:2])
    return (major, minor) >= (3, 14)
