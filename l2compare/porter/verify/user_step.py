"""One training step of the user's own port from any Keras state, as verify's ``TorchStepper`` takes one of the
generated port: the user's module (given Keras's weights and buffers, matched by ``user_port``), the user's
loss (data loss on its output, plus Keras's L2 with ``--penalty``) and the user's optimizer (given Keras's
slots where their layouts correspond, ``UserOptimizer.state_importable``)."""
from __future__ import annotations

import numpy as np
import torch

from l2compare.porter.verify.torch_side import data_loss, export_slots, import_slots
from l2compare.porter.verify.user_forward import to_user_input
from l2compare.porter.verify.user_port import Match, build_user, load_matched, read_matched


def keras_penalty(penalties, tensor_of, l2_scale: float = 1.0) -> torch.Tensor | int:
    """Keras's regularization terms on a port's tensors (``tensor_of``: by port key): λ·Σw² per L2 (× ``l2_scale``:
    the diagnosis's factor-2 candidates), λ·Σ|w| per L1."""
    total = 0
    for p in penalties:
        w = tensor_of(p.key)
        total = total + (l2_scale * p.lam * w.square().sum() if p.kind == "l2" else p.lam * w.abs().sum())
    return total


class UserStepper:
    """The user's module in one dtype, stepped from Keras states (``flat``: port keys and "key:slot")."""

    def __init__(self, cls, dtype: str, match: Match, optimizer, *, penalties, penalty: bool, layout: int,
                 returns_logits: bool, loss: str, x: list[np.ndarray], y: np.ndarray, decayed: set[str],
                 importable: bool, trainable: set[str]):
        self.model = build_user(cls, dtype).train()
        self.match, self.optimizer, self.importable = match, optimizer, importable
        self.penalties = penalties if penalty else []
        self.layout, self.returns_logits, self.loss, self.decayed = layout, returns_logits, loss, decayed
        self.x = [torch.from_numpy(np.ascontiguousarray(a)) for a in x]
        self.y = torch.from_numpy(np.ascontiguousarray(y))
        named = self.named = dict(self.model.named_parameters())
        # Keras's trainable tensors are the ones trained; a user tensor Keras keeps frozen is frozen here too.
        self.params = {key: named[user] for key, user in match.pairs.items() if user in named and key in trainable}
        for user_key, p in named.items():
            p.requires_grad_(any(p is q for q in self.params.values()))
        self.last_optimizer = None

    def step(self, flat: dict, iterations: int, batch: slice) -> dict[str, np.ndarray]:
        load_matched(self.model, self.match, flat)
        for p in self.params.values():
            p.grad = None
        out = self.model(*(to_user_input(a[batch], self.layout) for a in self.x))
        loss = data_loss(self.loss, out, self.y[batch], self.returns_logits)
        loss = loss + keras_penalty(self.penalties, lambda key: self.named[self.match.pairs[key]])
        loss.backward()
        optimizer = self.optimizer.build(self.params, self.decayed)
        if self.importable:
            import_slots(optimizer, self.params, flat, iterations)
        optimizer.step()
        self.last_optimizer = optimizer
        result = read_matched(self.model, self.match)
        if self.importable:
            result.update(export_slots(optimizer, self.params))
        return result
