"""Python code Keras has no graph for, turned into a graph: a subclassed model's ``call()`` and a Lambda's
function, run on symbolic inputs (``keras.Input``) so that the layers and ``keras.ops`` they call record
nodes. The traced model shares the original's layers, so its weights, regularizers and names are the
original's; only the Python glue between them becomes ops nodes, which the porter ports or refuses by name.

Only from Python (``keras_to_torch``, ``l2compare.porter.write``): a model file with a Lambda or a custom
model class does not load in Keras's safe mode, and so never gets here. Python control flow that depends on
the values of tensors cannot run on symbolic inputs, and is refused with Keras's reason.
"""
from __future__ import annotations

import keras

from l2compare.porter.errors import PortError


def _is_subclassed(model) -> bool:
    from keras.src.models.functional import Functional

    return isinstance(model, keras.Model) and not isinstance(model, (Functional, keras.Sequential))


def _has_python(model) -> bool:
    """Whether ``model`` holds a Lambda or a subclassed model, at any depth."""
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.Lambda) or _is_subclassed(layer):
            return True
    return False


def _trace(what: str, fn, *args):
    try:
        return fn(*args)
    except PortError:
        raise
    except Exception as e:   # Keras's own error on a symbolic tensor says what could not be traced
        raise PortError(f"{what} could not run on symbolic inputs (keras.Input), so it has no graph to port: "
                        f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300].rstrip('.')}. Python control flow that "
                        "depends on tensor values cannot be traced: write it with keras.ops (ops.where, "
                        "ops.cond) or as layers") from None


def _call_traced(layer, *args, **kwargs):
    """clone_model's call_function: a Lambda or a subclassed model runs its Python on the symbolic
    tensors (recording its layers and ops); any other layer is called as in the original graph."""
    if isinstance(layer, keras.layers.Lambda):   # Lambda.call passes the layer's `arguments` on
        return _trace(f"Lambda layer {layer.name!r}", lambda: layer.call(*args))
    if _is_subclassed(layer):   # a nested model stays nested: its own functional twin, called here
        return traced(layer, [tuple(t.shape) for t in keras.tree.flatten(args)])(*args)
    if isinstance(layer, keras.Model) and _has_python(layer):
        return traced(layer)(*args, **kwargs)
    return layer(*args, **kwargs)


def _input_shapes(model) -> list[tuple]:
    shapes = getattr(model, "_build_shapes_dict", None) or {}
    if len(shapes) != 1:
        raise PortError(f"{type(model).__name__} ({model.name!r}) is a subclassed keras.Model that has not been "
                        "called on data yet: call it once (or build it) so that its input shape is known")
    shape = next(iter(shapes.values()))
    if isinstance(shape, (list, tuple)) and shape and isinstance(shape[0], (list, tuple)):
        return [tuple(s) for s in shape]
    return [tuple(shape)]


def traced(model, shapes: list[tuple] | None = None):
    """``model`` itself when it is a Sequential or functional model without Python inside; else its
    functional twin (same layers and weights, the model's name). ``shapes``: a subclassed model's input
    shapes (batch axis included), when it is called in a graph; else those it was built with."""
    if not isinstance(model, keras.Model):
        return model
    if _is_subclassed(model):
        inputs = [keras.Input(batch_shape=(None, *s[1:]), dtype=model.input_dtype)
                  for s in (shapes or _input_shapes(model))]
        what = f"{type(model).__name__} ({model.name!r}), a subclassed keras.Model: its call()"
        outputs = _trace(what, model.call, inputs[0] if len(inputs) == 1 else inputs)
        functional = keras.Model(inputs, outputs, name=model.name)
        return traced(functional) if _has_python(functional) else functional
    if not getattr(model, "built", False) or not _has_python(model):
        return model
    # The same layers (clone_function returns each one itself), the Python ones traced into ops.
    source = model._functional if isinstance(model, keras.Sequential) else model
    # Not recursive: clone_model would clone a nested Sequential without call_function; _call_traced
    # traces nested models itself.
    clone = keras.models.clone_model(source, clone_function=lambda layer: layer, call_function=_call_traced)
    return keras.Model(clone.inputs, clone.outputs, name=model.name)   # the Keras name: the attribute's
