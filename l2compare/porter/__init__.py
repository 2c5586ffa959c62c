"""Floor 2: the porter. A Keras model with its regularizers -> the same model in torch, as source code.

The names below load on first use: ``l2compare.porter.modelfile``'s cheap checks of a file (missing, not a
Keras archive) need neither framework, so a bad path fails in a moment, not after both load.
"""
import importlib

_EXPORTS = {"PortError": "l2compare.porter.errors", "copy_weights": "l2compare.porter.convert", "keras_to_torch": "l2compare.porter.convert",
            "load_source": "l2compare.porter.convert", "write": "l2compare.porter.convert"}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'porter' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
