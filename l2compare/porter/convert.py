"""Port a Keras model to PyTorch: generate the torch source, load it, give it Keras's weights.

``keras_to_torch`` runs exactly the code ``l2compare port`` writes to a file (``write``), so
every test of the in-process port is a test of the file. Canonical weight moves
(``copy_weights``) serve the models whose torch parameters are Keras's "layer/kernel" and
"layer/bias" (Dense and Conv2D); the generated ``Generated.state()`` serves every ported layer.

This module imports both frameworks; the run engine never imports it.
"""
from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import torch
from torch import nn

from keras_impl import weights as keras_weights
from l2compare.porter import codegen
from l2compare.porter.errors import PortError
from torch_impl import weights as torch_weights

__all__ = ["PortError", "keras_to_torch", "load_source", "write", "copy_weights", "load_state"]


def load_source(source: str, name: str = "ported_model", path: str | None = None) -> types.ModuleType:
    """The generated source as a module (``path`` is where its weights file would sit)."""
    module = types.ModuleType(name)
    module.__file__ = path or f"<{name}>"
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


def load_state(model: nn.Module, state: dict[str, np.ndarray]) -> None:
    """Assign a state dict of NumPy arrays (torch layout), in the model's dtype; every key must match."""
    current = model.state_dict()
    missing, extra = sorted(set(current) - set(state)), sorted(set(state) - set(current))
    if missing or extra:
        raise ValueError(f"state keys differ: missing {missing}, unexpected {extra}")
    model.load_state_dict({k: torch.as_tensor(np.ascontiguousarray(v)).to(current[k].dtype) for k, v in state.items()})


def keras_to_torch(keras_model) -> nn.Module:
    """An equivalent torch module, with Keras's weights and regularizers.

    Input: the same arrays as the Keras model (channels last). Output: logits if the Keras model
    ends in a softmax (``returns_logits`` is True), else the Keras model's output. The module
    carries ``port`` (the generated source, penalties and weight reader), ``source_module``
    (its ``l2_penalty`` and ``param_groups``) and ``l2_coefficients`` (canonical name -> λ, for
    the L2 terms on Dense/Conv2D kernels and biases that ``torch_impl.l2`` reads).
    """
    generated = codegen.generate(keras_model)
    module = load_source(generated.source, f"ported_{generated.class_name}")
    # Built on the meta device, then given Keras's weights: torch's own initialization of every
    # parameter (seconds for a 20 M-parameter backbone) would be overwritten anyway. load_state
    # checks that every tensor of the module is assigned.
    with torch.device("meta"):
        model = getattr(module, generated.class_name)()
    model = model.to_empty(device="cpu").to(getattr(torch, generated.dtype))
    load_state(model, generated.state())
    model.port, model.source_module, model.returns_logits = generated, module, generated.returns_logits
    model.l2_coefficients = {p.keras: p.lam for p in generated.penalties
                             if p.kind == "l2" and _canonical_key(p.keras) == p.key}
    return model


def _canonical_key(keras_name: str) -> str | None:
    try:
        return torch_weights.torch_name(keras_name)
    except KeyError:
        return None


def write(keras_model, out: Path) -> list[Path]:
    """Write ``out`` (the standalone torch source) and its weights file beside it; return both paths."""
    out = Path(out)
    weights = out.with_name(out.stem + "_weights.pt")
    generated = codegen.generate(keras_model, weights_file=weights.name)
    dtype = getattr(torch, generated.dtype)
    tensors = {k: torch.as_tensor(np.ascontiguousarray(v)) for k, v in generated.state().items()}
    tensors = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in tensors.items()}
    torch.save(tensors, weights)
    out.write_text(generated.source)
    return [out, weights]


def _is_torch(model) -> bool:
    return isinstance(model, nn.Module)


def export_weights(model) -> dict[str, np.ndarray]:
    """Canonical weights (Keras layout) of a Keras model or a torch mirror."""
    return torch_weights.export_weights(model) if _is_torch(model) else keras_weights.export_weights(model)


def import_weights(model, weights: dict[str, np.ndarray]) -> None:
    """Assign canonical weights to a Keras model or a torch mirror (names and shapes checked)."""
    if _is_torch(model):
        torch_weights.import_weights(model, weights)
    else:
        keras_weights.import_weights(model, weights)


def copy_weights(src, dst) -> None:
    """Copy every weight from ``src`` to ``dst`` (Keras -> torch or torch -> Keras, or same kind)."""
    import_weights(dst, export_weights(src))

