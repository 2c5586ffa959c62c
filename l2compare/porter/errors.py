"""The porter's one error: a model or layer that cannot be ported exactly."""
from __future__ import annotations


class PortError(ValueError):
    """A Keras model or layer that cannot be ported exactly (the message names it and what is missing)."""
