"""The framework columns: each is one registry entry (framework × backend), looked up lazily.

A column names the module that trains a run spec in it (a ``l2compare.core.training.TrainingRun``
subclass called ``Run`` there); nothing imports that module except a process that runs
the column (``l2compare.engine.workers``), so registering a column imports no framework.

Adding a column (Keras on the JAX backend, say) is ``register(Column(...))``: the spec
validator, ``l2compare list``, the run engine and the tables all read this registry.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Column:
    """One framework column.

    ``framework`` says which vocabulary its runs use (``keras``: Keras configs; ``torch``: torch
    recipes) and where parity-mode runs get their initial weights (``torch`` columns start from
    the ``keras`` column's). ``worker`` is the module holding its ``Run``; ``env`` the environment
    variables its processes need before the framework is imported (``l2compare.core.environment``).
    """

    name: str
    framework: str
    backend: str
    worker: str
    label: str  # short, for table headers: "Keras" -> "Keras l2"
    description: str = ""  # for `l2compare list`
    env: dict = field(default_factory=dict, hash=False, compare=False)
    # Its framework sizes its thread pool from the CPUs the process may use and ignores its thread
    # settings (XLA on a CPU): a worker serving it is confined to ``threads`` cores of its own.
    pin_cores: bool = False

    def run(self):
        """The column's training run (imports its framework: call only in the worker process)."""
        return importlib.import_module(self.worker).Run()


_REGISTRY: dict[str, Column] = {}
# Parity-mode runs of every other column start from this column's initial weights (Keras on
# TensorFlow: the reference the parity proofs are written against), so that only the arithmetic differs.
PARITY_SOURCE = "keras"


def register(column: Column) -> Column:
    """Add ``column`` (or replace the entry of that name with an equal one); return it."""
    if column.framework not in ("keras", "torch"):
        raise ValueError(f"column {column.name!r}: framework must be keras or torch, got {column.framework!r}")
    existing = _REGISTRY.get(column.name)
    if existing is not None and (existing, existing.env) != (column, column.env):
        raise ValueError(f"a different column named {column.name!r} is already registered")
    _REGISTRY[column.name] = column
    return column


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def get(name: str) -> Column:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown framework column {name!r}; allowed: {', '.join(_REGISTRY)}") from None


def all_columns() -> list[Column]:
    return list(_REGISTRY.values())


# Registry order is table order: Keras on each backend, then native PyTorch.
# Keras picks its backend from KERAS_BACKEND when it is first imported, so a Keras column's
# processes must have it set before then.
KERAS = register(Column("keras", "keras", "tensorflow", "keras_impl.worker", "Keras",
                        "Keras 3 on TensorFlow (keras_impl)", env={"KERAS_BACKEND": "tensorflow"}))
# Keras 3 on its other backends. JAX computes float64 only with x64 on (it is set for the whole
# process, before JAX starts); a float32 model is unaffected, as Keras casts explicitly.
KERAS_JAX = register(Column("keras_jax", "keras", "jax", "keras_impl.worker", "Keras (JAX)",
                            "Keras 3 on JAX (keras_impl; XLA via jit_compile='auto')",
                            env={"KERAS_BACKEND": "jax", "JAX_ENABLE_X64": "1"}, pin_cores=True))
KERAS_TORCH = register(Column("keras_torch", "keras", "torch", "keras_impl.worker", "Keras (torch)",
                              "Keras 3 on the torch backend (keras_impl; eager)", env={"KERAS_BACKEND": "torch"}))
TORCH = register(Column("torch", "torch", "torch", "torch_impl.worker", "torch",
                        "native PyTorch, ported by hand (torch_impl)"))
