"""The article's three Keras models, ported to PyTorch by hand.

Read this beside ``keras_impl/models.py``. What a port must change:

* outputs are logits; the softmax lives in the loss (``F.cross_entropy``), which is
  also how Keras's TensorFlow backend computes the loss of a softmax output;
* inputs are NCHW (N, 1, 28, 28) for the CNN, Keras's are NHWC (N, 28, 28, 1);
* Keras's Flatten reads (H, W, C); torch's reads (C, H, W). We permute the
  activations back to (H, W, C) before flattening, so Keras's Dense kernel maps
  onto ``out`` by a plain transpose. Without that permute the port is silently wrong;
* L2 is not a layer argument in torch: ``model.l2_coefficients`` records λ per
  tensor (canonical names, as Keras's; see ``torch_impl.l2``), on exactly the tensors
  Keras regularizes (``l2compare.core.names.REGULARIZED``).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from l2compare.core.names import MODELS, REGULARIZED


class KerasFlatten(nn.Module):
    """Flatten in Keras's channels-last order: (N, C, H, W) -> (N, H·W·C)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(x.permute(0, 2, 3, 1), 1)


class MLP(nn.Module):
    """Input(784) → Dense(128, relu) → Dense(10, softmax as logits)."""

    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(784, 128)
        self.out = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, 784)
        return self.out(F.relu(self.hidden(x)))


class CNN(nn.Module):
    """Conv(32,3) → MaxPool(2) → Conv(64,3) → MaxPool(2) → Flatten(HWC) → Dense(10)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)  # 'valid' padding = torch's padding=0
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.pool2 = nn.MaxPool2d(2)
        self.flatten = KerasFlatten()
        self.out = nn.Linear(5 * 5 * 64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, 1, 28, 28)
        x = self.pool1(F.relu(self.conv1(x)))  # (N, 32, 13, 13)
        x = self.pool2(F.relu(self.conv2(x)))  # (N, 64, 5, 5)
        return self.out(self.flatten(x))  # (N, 1600) in H, W, C order -> (N, 10)


def build_model(name: str, l2: float | None = 0.01, dtype: str | torch.dtype = "float32") -> nn.Module:
    """The torch mirror of ``keras_impl.build_model(name, l2)``; λ = 0 or None means no L2."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; allowed: {', '.join(MODELS)}")
    model = CNN() if name == "cnn" else MLP()
    model.l2_coefficients = {tensor: float(l2) for tensor in REGULARIZED[name]} if l2 else {}
    return model.to(dtype=getattr(torch, dtype) if isinstance(dtype, str) else dtype)
