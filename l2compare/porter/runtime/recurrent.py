"""Code the generated file carries for Keras's recurrent layers (copied verbatim by the porter).

Each object here may use only ``torch``, ``nn`` and ``F``: its source is pasted into a standalone
file that imports nothing else.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def single_bias(rnn):
    """Keras's LSTM and SimpleRNN have one bias where torch's have two (bias_ih + bias_hh, summed in
    every gate). Keras's bias goes in bias_ih; bias_hh is held at zero and frozen. Two trainable
    copies would each get the bias's full gradient and move their sum twice as far per step."""
    for name, p in rnn.named_parameters():
        if name.startswith("bias_hh"):
            nn.init.zeros_(p)
            p.requires_grad_(False)
    return rnn


def sequence_dropout(x, p, training):
    """Keras's dropout on a recurrent layer's inputs (N, T, F): one mask per sequence, the same
    features dropped at every time step (nn.Dropout would draw a new mask at each step)."""
    return x * F.dropout(x.new_ones(x.shape[0], 1, x.shape[2]), p, training)


class GRUResetBefore(nn.Module):
    """Keras's GRU with reset_after=False (the original GRU): the reset gate multiplies the previous
    state *before* the recurrent matrix, n = tanh(W_in x + b_n + W_hn (r * h)), where torch's nn.GRU
    computes r * (W_hn h + b_hn). Batch first; weights in nn.GRU's layout and gate order (r, z, n);
    one bias, on the input side, as Keras's. Returns (outputs (N, T, H), h_n (1, N, H)) as nn.GRU."""

    def __init__(self, input_size, hidden_size, bias=True):
        super().__init__()
        self.hidden_size = hidden_size
        self.weight_ih = nn.Parameter(torch.empty(3 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(3 * hidden_size, hidden_size))
        self.register_parameter("bias_ih", nn.Parameter(torch.empty(3 * hidden_size)) if bias else None)
        bound = hidden_size ** -0.5   # nn.GRU's initialization
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x):
        u = self.hidden_size
        gates_x = F.linear(x, self.weight_ih, self.bias_ih)   # the input's share, every step at once
        w_rz, w_n = self.weight_hh[:2 * u], self.weight_hh[2 * u:]
        h = x.new_zeros(x.shape[0], u)
        outputs = []
        for x_t in gates_x.unbind(1):
            x_r, x_z, x_n = x_t.split(u, dim=1)
            h_r, h_z = F.linear(h, w_rz).split(u, dim=1)
            r = torch.sigmoid(x_r + h_r)
            z = torch.sigmoid(x_z + h_z)
            n = torch.tanh(x_n + F.linear(r * h, w_n))
            h = z * h + (1 - z) * n
            outputs.append(h)
        return torch.stack(outputs, dim=1), h.unsqueeze(0)
