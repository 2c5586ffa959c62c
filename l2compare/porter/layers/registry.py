"""What a layer's port is made of, and the registry of layer porters.

A porter is a function ``port(ctx) -> Port`` registered for exact Keras classes (a subclass of
``Dense`` is a custom layer, and is refused). ``ctx`` says which layer, the Keras shapes of its
inputs and output (no batch axis), the layout its inputs arrive in, and the dtype. The ``Port``
it returns is source code: the torch submodules (``modules``), the forward lines, and a
function that reads the layer's current Keras weights into torch's layout (``state``), plus
the penalties Keras adds for it and a note on what was carried.

Layouts. The generated model takes and returns Keras's layout (channels last). Convolutions
and pooling run channels first, as torch's do; the code generator permutes a tensor only when
the next layer needs the other layout, so a conv stack permutes once on the way in and once
before ``Flatten``. A porter declares what it takes: ``"cf"`` (channels first), ``"keras"`` or
``"any"`` (elementwise layers, and layers that map their axis with ``ctx.dim``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from l2compare.porter.errors import PortError

LAYOUTS = ("keras", "cf", "any")


@dataclass
class Penalty:
    """One term Keras adds to the loss for a weight: λ·Σw² (``l2``) or λ·Σ|w| (``l1``)."""

    key: str     # the torch state-dict key, "conv1.weight"
    kind: str    # "l2" or "l1"
    lam: float   # λ exactly as Keras applies it (see ``applied``)
    keras: str   # Keras's name for the weight, "conv1/kernel"


@dataclass
class Port:
    """A layer's torch code. ``forward`` lines use ``{x}`` (or ``{x0}``, ``{x1}``, ... for several
    inputs) and ``{y}`` for the output variable."""

    shape: tuple                                   # Keras output shape, no batch axis
    forward: list[str]
    modules: dict[str, str] = field(default_factory=dict)   # attribute -> constructor source
    state: Callable[[], dict[str, np.ndarray]] = dict        # state-dict key -> array, torch layout
    penalties: list[Penalty] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)           # what was carried, for the file's comment
    helpers: tuple = ()      # functions or classes the code uses; their source is copied into the file
    layout: str | None = None                     # output layout; None: the input's


@dataclass
class Ctx:
    """What a porter knows about the layer it ports."""

    layer: object
    attr: str                 # the Python attribute name for the layer ("conv2d_1")
    shapes: list[tuple]       # Keras input shapes, no batch axis
    out_shape: tuple          # Keras output shape, no batch axis
    layout: str               # the layout its inputs arrive in: "keras" or "cf"
    dtype: str                # "float32" or "float64"
    node: object = None         # the graph node (l2compare.porter.graph.Node): a keras.ops call's arguments
    fold_softmax: bool = False  # the model's output softmax is left to the loss: emit logits
    folded: bool = False        # set when the porter did leave it out (l2compare.porter.layers.activations.apply)
    masks: list = field(default_factory=list)   # per input: its Keras mask's variable, (N, T) bool, or None

    @property
    def shape(self) -> tuple:
        return self.shapes[0]

    def fail(self, what: str) -> PortError:
        return unsupported(self.layer, what)

    def dim(self, axis: int, rank: int | None = None) -> int:
        """The torch dim of Keras axis ``axis`` (of a tensor with the batch axis) in this layout."""
        rank = (len(self.shape) + 1) if rank is None else rank
        axis = axis % rank
        if self.layout == "keras" or axis == 0:
            return axis
        return 1 if axis == rank - 1 else axis + 1   # channels first: (N, C, spatial...)

    def weight(self, name: str) -> np.ndarray:
        """The layer's current Keras weight ``name`` ("kernel", "gamma", ...) as a NumPy array."""
        return np.array(_numpy(getattr(self.layer, name)), copy=True)


def _numpy(variable) -> np.ndarray:
    import keras

    return keras.ops.convert_to_numpy(variable)


def applied(value: float) -> float:
    """A regularizer's factor as Keras applies it: ``ops.cast(l2, x.dtype)``. On TensorFlow a Python
    float goes through float32 first, so a float64 model's λ = 1e-3 is 0.0010000000474974513; the
    cast itself, done by Keras in float64, gives exactly the value Keras multiplies by."""
    import keras

    return float(keras.ops.convert_to_numpy(keras.ops.cast(value, "float64")))


def regularizer_terms(layer, attr: str) -> list[tuple[str, float]]:
    """[(kind, λ)] for ``layer.<attr>`` (an L1, L2 or L1L2 regularizer); a custom one is refused."""
    from keras import regularizers

    reg = getattr(layer, attr, None)
    if reg is None:
        return []
    if type(reg) is regularizers.L2:
        pairs = [("l2", reg.l2)]
    elif type(reg) is regularizers.L1:
        pairs = [("l1", reg.l1)]
    elif type(reg) is regularizers.L1L2:
        pairs = [("l1", reg.l1), ("l2", reg.l2)]
    else:
        raise unsupported(layer, f"{attr} {type(reg).__name__} (only L1, L2 and L1L2 are carried)")
    return [(kind, applied(lam)) for kind, lam in pairs if lam]


def penalties(ctx: Ctx, attr: str, key: str, weight: str) -> list[Penalty]:
    """The penalties of regularizer ``attr`` (e.g. "kernel_regularizer") on state-dict ``key``."""
    return [Penalty(key, kind, lam, f"{ctx.layer.name}/{weight}")
            for kind, lam in regularizer_terms(ctx.layer, attr)]


def check_constraints(ctx: Ctx) -> None:
    """Constraints project weights after each step: not an L2 matter, and not carried."""
    for attr in dir(ctx.layer):
        if attr.endswith("_constraint") and getattr(ctx.layer, attr, None) is not None:
            raise ctx.fail(f"{attr} (constraints are not carried)")


def freeze(ctx: Ctx, modules: dict[str, str], regs: list) -> tuple[dict[str, str], list]:
    """A layer with trainable=False: Keras neither trains its weights nor adds their regularizers
    (Layer._get_regularization_losses reads trainable_weights only). Applied to every port by the
    code generator; a module already frozen by its porter is left as it is."""
    if getattr(ctx.layer, "trainable", True):
        return modules, regs

    def frozen(ctor: str) -> str:
        if "requires_grad" in ctor or "frozen=True" in ctor:
            return ctor
        return ctor[:-1] + ", requires_grad=False)" if ctor.startswith("nn.Parameter(") else ctor + ".requires_grad_(False)"
    return {attr: frozen(ctor) for attr, ctor in modules.items()}, []


# Keras class -> (porter, the layout it takes)
PORTERS: dict[type, tuple[Callable[[Ctx], Port], str]] = {}


def register(*keras_classes, layout: str = "keras"):
    """Register ``port(ctx)`` for exactly these Keras classes (subclasses are custom layers)."""
    assert layout in LAYOUTS, layout

    def decorate(fn):
        for cls in keras_classes:
            PORTERS[cls] = (fn, layout)
        return fn
    return decorate


def unsupported(layer, what: str) -> PortError:
    """The PortError for ``layer``: its name, its class and what the porter does not carry."""
    return PortError(f"cannot port layer {layer.name!r} ({type(layer).__name__}): {what}. "
                     f"Supported layers: {supported()}")


def porter_for(layer):
    found = PORTERS.get(type(layer))
    if found is None:
        raise unsupported(layer, "this layer type is not ported (a custom layer, or one the porter does not know)")
    return found


def supported() -> str:
    """The Keras classes with a porter (l2compare.porter.codegen imports every family that registers one)."""
    return ", ".join(sorted({cls.__name__ for cls in PORTERS}))
