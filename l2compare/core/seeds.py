"""One integer seed per run, split per purpose, so that changing how batches are drawn
never changes the initial weights (and vice versa)."""
from __future__ import annotations

import numpy as np

PURPOSES = {"init": 0, "batches": 1, "data": 2}


def derive(seed: int, purpose: str) -> int:
    """A 31-bit seed for ``purpose`` derived from the run's seed (valid for every framework)."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown seed purpose {purpose!r}; allowed: {', '.join(PURPOSES)}")
    state = np.random.SeedSequence([int(seed), PURPOSES[purpose]]).generate_state(1)[0]
    return int(state) & 0x7FFFFFFF


def epoch_orders(n: int, epochs: int, seed: int) -> list[np.ndarray]:
    """Keras's fit(shuffle=True) order: a fresh permutation of the n samples every epoch."""
    rng = np.random.default_rng(derive(seed, "batches"))
    return [rng.permutation(n) for _ in range(epochs)]
