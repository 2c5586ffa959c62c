"""Keras side of l2compare. Imports keras (TensorFlow backend by default), never torch.

The environment is set before keras is imported (``l2compare.core.environment``: quiet TensorFlow
logs, oneDNN's reordered kernels off, the TensorFlow backend unless KERAS_BACKEND says
otherwise), so that importing this package directly behaves as the suite's workers do.
"""
from l2compare.core import environment

environment.configure()

from keras_impl.models import build_model  # noqa: E402

__all__ = ["build_model"]
