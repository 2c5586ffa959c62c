"""Runtime helpers copied verbatim into a generated file: they may use only torch, nn, F and math."""
from __future__ import annotations

import torch
from torch import nn


class KerasBatchNorm(nn.Module):
    """Keras's BatchNormalization, with Keras's arithmetic.

    nn.BatchNorm*d cannot stand in for it in training: torch moves running_var with the batch's
    *unbiased* variance (× n/(n−1)), Keras moves moving_variance with the biased one it
    normalizes by. Here, as in keras.layers.BatchNormalization.call and tf.nn.batch_normalization:

    - training: mean and biased variance of the batch over every axis but ``dim``; then
      ``moving = moving * momentum + batch * (1 - momentum)``, with Keras's momentum (0.99 is
      torch's momentum=0.01);
    - inference, or a frozen layer (Keras's ``trainable=False``): the moving statistics;
    - out = x * inv + (beta - mean * inv), inv = rsqrt(var + eps) * gamma.

    ``dim`` is the channel axis of the input as it arrives (1 for channels first). weight/bias
    are Keras's gamma/beta (None without scale/center); running_mean/running_var its
    moving_mean/moving_variance.
    """

    def __init__(self, num_features, dim=1, eps=1e-3, momentum=0.99, center=True, scale=True, frozen=False):
        super().__init__()
        self.dim, self.eps, self.momentum, self.frozen = dim, eps, momentum, frozen
        self.weight = nn.Parameter(torch.ones(num_features)) if scale else None
        self.bias = nn.Parameter(torch.zeros(num_features)) if center else None
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        if frozen:
            self.requires_grad_(False)

    def forward(self, x):
        shape = [1] * x.dim()
        shape[self.dim] = -1
        if self.training and not self.frozen:
            axes = [d for d in range(x.dim()) if d != self.dim]
            mean = x.mean(axes, keepdim=True)
            # tf.nn.moments: the biased variance, around a mean that passes no gradient.
            var = (x - mean.detach()).square().mean(axes, keepdim=True)
            with torch.no_grad():
                self.running_mean.copy_(self.running_mean * self.momentum + mean.flatten() * (1.0 - self.momentum))
                self.running_var.copy_(self.running_var * self.momentum + var.flatten() * (1.0 - self.momentum))
        else:
            mean, var = self.running_mean.view(shape), self.running_var.view(shape)
        inv = torch.rsqrt(var + self.eps)
        if self.weight is not None:
            inv = inv * self.weight.view(shape)
        shift = -mean * inv if self.bias is None else self.bias.view(shape) - mean * inv
        return x * inv + shift


class KerasNormalization(nn.Module):
    """keras.layers.Normalization with its statistics fixed (adapted, or given): (x − mean) / max(√var, ε),
    or, with ``invert``, mean + x·max(√var, ε). ``mean`` and ``variance`` are buffers of Keras's
    broadcast shape (1, ..., C): weights that no optimizer moves, as in Keras."""

    def __init__(self, shape, eps, invert=False):
        super().__init__()
        self.eps, self.invert = eps, invert
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("variance", torch.ones(shape))

    def forward(self, x):
        scale = torch.clamp(torch.sqrt(self.variance), min=self.eps)
        return self.mean + x * scale if self.invert else (x - self.mean) / scale
