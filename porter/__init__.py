"""Floor 2: the porter. A Keras model with its regularizers -> the same model in torch."""
from porter.convert import PortError, copy_weights, keras_to_torch

__all__ = ["PortError", "copy_weights", "keras_to_torch"]
