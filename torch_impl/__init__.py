"""PyTorch side of l2compare. Imports torch, never keras or tensorflow."""
from torch_impl.models import build_model

__all__ = ["build_model"]
