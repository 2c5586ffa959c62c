"""The minimal hand-written torch loop the bench times the suite against (mirror: keras_impl/bench.py).

``l2compare.core.bench_loop`` runs the comparison, the same way for every framework.
"""
from __future__ import annotations

import time

import numpy as np
import torch
from torch.nn import functional as F

import torch_impl
from torch_impl import train
from torch_impl.l2 import penalty as l2_penalty


def _epochs(model, opt, x, y, order, batch_size) -> None:
    for perm in order:
        perm = torch.as_tensor(perm)
        for start in range(0, len(perm), batch_size):
            idx = perm[start:start + batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx]) + l2_penalty(model)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


def minimal_loop(model_name: str, x: np.ndarray, y: np.ndarray, order, warm_order, batch_size: int) -> float:
    """What a user would write: the model with the article's λ, Adam, cross-entropy plus the L2
    penalty, nothing else. Seconds over ``order``, after an untimed epoch over ``warm_order``."""
    model = torch_impl.build_model(model_name, l2=0.01)
    xs, ys = train.as_inputs(x, model_name, "float32"), torch.as_tensor(y)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    _epochs(model, opt, xs, ys, warm_order, batch_size)
    start = time.perf_counter()
    _epochs(model, opt, xs, ys, order, batch_size)
    return time.perf_counter() - start
