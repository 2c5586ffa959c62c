"""Floor 2: the porter. A Keras model with its regularizers -> the same model in torch, as source code."""
from porter.convert import copy_weights, keras_to_torch, load_source, write
from porter.errors import PortError

__all__ = ["PortError", "copy_weights", "keras_to_torch", "load_source", "write"]
