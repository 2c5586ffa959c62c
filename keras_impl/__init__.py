"""Keras side of l2compare. Imports keras (TensorFlow backend by default), never torch.

The environment is set before keras is imported: quiet TensorFlow logs, and
oneDNN's reordered kernels off so that runs are bit-reproducible on CPU.
"""
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from keras_impl.models import MODEL_NAMES, build_model  # noqa: E402

__all__ = ["MODEL_NAMES", "build_model"]
