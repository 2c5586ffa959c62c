"""One integer seed and a fixed thread count for the torch side (mirror: keras_impl/seeding.py)."""
from __future__ import annotations

import random

import numpy as np
import torch


def set_threads(n: int) -> None:
    """Fix torch's intra-op and inter-op pools to ``n`` threads."""
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(n)
    except RuntimeError:
        # Already set, or parallel work already started: the pool is fixed for this process.
        pass


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch, so that initializers are reproducible."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def enable_determinism() -> None:
    """Deterministic kernels (a separate switch: it can cost speed)."""
    torch.use_deterministic_algorithms(True)
