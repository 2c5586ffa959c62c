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

    def forward(self, x, mask=None, zero_output=False):
        """``mask`` (N, T), True = a real step: as in ``masked_rnn``, a masked step keeps the state
        and repeats the previous output (zeros with ``zero_output``)."""
        u = self.hidden_size
        gates_x = F.linear(x, self.weight_ih, self.bias_ih)   # the input's share, every step at once
        w_rz, w_n = self.weight_hh[:2 * u], self.weight_hh[2 * u:]
        h = x.new_zeros(x.shape[0], u)
        out = h
        outputs = []
        for t, x_t in enumerate(gates_x.unbind(1)):
            x_r, x_z, x_n = x_t.split(u, dim=1)
            h_r, h_z = F.linear(h, w_rz).split(u, dim=1)
            r = torch.sigmoid(x_r + h_r)
            z = torch.sigmoid(x_z + h_z)
            n = torch.tanh(x_n + F.linear(r * h, w_n))
            new = z * h + (1 - z) * n
            if mask is None:
                h = out = new
            else:
                m = mask[:, t, None]   # (N, 1)
                h = torch.where(m, new, h)
                out = torch.where(m, new, torch.zeros_like(new) if zero_output else out)
            outputs.append(out)
        return torch.stack(outputs, dim=1), h.unsqueeze(0)


def masked_rnn(rnn, x, mask, zero_output=False, suffix="_l0"):
    """Keras's RNN loop over a masked sequence x (N, T, F), mask (N, T) with True = a real step
    (``keras/src/backend/tensorflow/rnn.py``): a masked step keeps the state (h, and the LSTM's c)
    and repeats the previous output, zeros before the first real step; with ``zero_output``
    (Keras's zero_output_for_mask, which Bidirectional sets when it returns sequences) a masked
    step outputs zeros. A gap in the middle is one masked step like any other, which
    pack_padded_sequence cannot express. ``rnn`` is an nn.LSTM, nn.GRU or nn.RNN (one layer, one
    direction: ``suffix`` names its parameters) or a GRUResetBefore. Returns (outputs (N, T, H), None)."""
    if not isinstance(rnn, nn.RNNBase):   # GRUResetBefore: its own loop takes the mask
        return rnn(x, mask, zero_output)[0], None
    w_ih, w_hh = getattr(rnn, "weight_ih" + suffix), getattr(rnn, "weight_hh" + suffix)
    b_ih, b_hh = getattr(rnn, "bias_ih" + suffix, None), getattr(rnn, "bias_hh" + suffix, None)
    h = x.new_zeros(x.shape[0], rnn.hidden_size)
    c, out, outputs = h, h, []
    for t in range(x.shape[1]):
        gates_x, gates_h = F.linear(x[:, t], w_ih, b_ih), F.linear(h, w_hh, b_hh)
        gates = gates_x + gates_h
        if isinstance(rnn, nn.LSTM):   # torch's gate order (i, f, g, o), Keras's (i, f, c, o)
            i, f, g, o = gates.chunk(4, dim=1)
            new_c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            new = torch.sigmoid(o) * torch.tanh(new_c)
        elif isinstance(rnn, nn.GRU):   # (r, z, n); the reset gate after the recurrent matrix
            x_r, x_z, x_n = gates_x.chunk(3, dim=1)
            h_r, h_z, h_n = gates_h.chunk(3, dim=1)
            r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
            new = z * h + (1 - z) * torch.tanh(x_n + r * h_n)
        else:
            new = torch.relu(gates) if rnn.nonlinearity == "relu" else torch.tanh(gates)
        m = mask[:, t, None]   # (N, 1)
        if isinstance(rnn, nn.LSTM):
            c = torch.where(m, new_c, c)
        h = torch.where(m, new, h)
        out = torch.where(m, new, torch.zeros_like(new) if zero_output else out)
        outputs.append(out)
    return torch.stack(outputs, dim=1), None
