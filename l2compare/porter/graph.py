"""A Keras model as an ordered list of nodes: which operation, fed by which tensors.

Sequential and functional models both have a graph of nodes (a Sequential with an input shape
builds a functional one inside); ``keras.ops`` calls in a functional model are nodes too. A
subclassed model has no graph, only Python code in ``call()``, and is refused. A model used as a
layer (a nested backbone) is one node here; the code generator walks its own graph in turn.
"""
from __future__ import annotations

from dataclasses import dataclass

import keras

from l2compare.porter.errors import PortError


@dataclass
class Node:
    operation: object     # a keras Layer, or a keras.ops Operation
    inputs: list          # the KerasTensors it reads, in argument order
    outputs: list         # the KerasTensors it produces
    args: tuple           # the call's arguments as recorded (tensors included)
    kwargs: dict


@dataclass
class Graph:
    inputs: list
    outputs: list
    nodes: list[Node]


def _functional(model):
    from keras.src.models.functional import Functional  # Keras 3 has no public name for it

    if isinstance(model, keras.Sequential):
        if not getattr(model, "built", False) or getattr(model, "_functional", None) is None:
            raise PortError(f"model {model.name!r} has no input shape yet: give it a keras.Input (or build it) first")
        return model._functional
    if isinstance(model, Functional):
        return model
    raise PortError(f"{type(model).__name__} ({model.name!r}) is a subclassed keras.Model: its call() is Python code, with no "
                    "layer graph to port; rebuild it as a Sequential or functional model")


def walk(model) -> Graph:
    """The model's nodes in an order where every node comes after the nodes that feed it."""
    if not isinstance(model, keras.Model):
        raise PortError(f"expected a keras Model, got {type(model).__name__}")
    functional = _functional(model)
    nodes = []
    for depth in sorted(functional._nodes_by_depth, reverse=True):
        for node in functional._nodes_by_depth[depth]:
            if node.is_input or not node.operation:
                continue
            operation = node.operation
            if isinstance(operation, keras.Model):
                _functional(operation)   # a nested subclassed model is refused here, by name
            nodes.append(Node(operation, list(node.arguments.keras_tensors), list(node.outputs),
                              node.arguments.args, node.arguments.kwargs))
    return Graph(list(functional.inputs), list(functional.outputs), nodes)


def dtype_of(model) -> str:
    """float64 or float32: the weights' dtype, else the inputs'. Keras casts a layer's inputs to the
    layer's dtype, so float64 inputs into float32 layers (floatx set after Keras fixed its dtype policy)
    compute in float32: refused, rather than ported in a precision Keras does not use."""
    weights = {str(w.dtype) for w in model.weights if str(w.dtype).startswith(("float", "bfloat"))}
    inputs = {str(keras.backend.standardize_dtype(t.dtype)) for t in model.inputs}
    floats = weights | {d for d in inputs if d.startswith("float")}
    if "float64" in floats and len(floats) > 1:
        raise PortError(f"model {model.name!r} mixes float64 with {sorted(floats - {'float64'})} in its inputs or "
                        "weights (Keras casts each layer's inputs to its dtype): build it in one dtype "
                        "(keras.config.set_dtype_policy as well as set_floatx)")
    return "float64" if "float64" in floats else "float32"
