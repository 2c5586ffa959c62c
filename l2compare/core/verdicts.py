"""The float64 verdict and the 1-ulp nudge, shared by the parity grid (l2compare.parity.runner) and a user's
own model (l2compare.porter.verify.runner): one rule, so that "exact" means the same in both reports."""
from __future__ import annotations

import numpy as np

# float64: the trajectory decides. max |Δw| at or below EXACT_FLOAT64 over every step is "exact"
# (the same computation up to rounding); above CLOSE it is "wrong"; in between, "close".
EXACT_FLOAT64 = 1e-12
CLOSE = 1e-3


def trajectory_verdict(worst: float) -> str:
    """float64: max |Δw| over the trajectory."""
    if not np.isfinite(worst):
        return "wrong"
    return "exact" if worst <= EXACT_FLOAT64 else "close" if worst <= CLOSE else "wrong"


def one_ulp_up(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every float weight (and buffer) moved by one unit in the last place: the smallest change of a
    start. Integer entries (a step counter) stay as they are."""
    return {k: np.nextafter(v, np.array(np.inf, dtype=v.dtype)) if np.issubdtype(v.dtype, np.floating) else v
            for k, v in state.items()}
