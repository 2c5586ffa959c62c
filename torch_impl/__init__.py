"""PyTorch side of l2compare. Imports torch, never keras or tensorflow."""
from torch_impl.models import MODEL_NAMES, build_model

__all__ = ["MODEL_NAMES", "build_model"]
