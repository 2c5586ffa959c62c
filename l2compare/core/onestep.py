"""The one-step judge: is a torch step the same computation as Keras's, from the same state?

Framework-free (NumPy only), so that the parity grid (``l2compare.parity.onestep``, which measures the
steps of the article's models) and ``verify`` (``l2compare.porter.verify``, a user's own model) judge
with one rule. Before every step t, torch is given Keras's weights, buffers and optimizer state after
step t−1; it takes one step on the same batch, and the states after the step are compared per tensor
and optimizer slot, relative to the tensor's max |·|:

    cross        |torch32 − keras32|     what the port changes, plus rounding
    torch floor  |torch32 − torch64|     torch's own float32 rounding of this step
    keras floor  |keras32 − keras64|     Keras's own float32 rounding of this step
    cross64      |torch64 − keras64|     the two computations, without float32 rounding

(the float64 steps start from the same float32 state, cast up). By the triangle inequality,
cross ≤ torch floor + keras floor + cross64 on any machine: an exact recipe's cross64 is float64
rounding, so its cross never leaves the floor; a wrong one adds its own error at every step.

float64 is judged on cross64, against the same floors scaled to float64: a step's float64 rounding
is its float32 rounding times the ratio of the unit roundoffs, 2⁻⁵³/2⁻²⁴ = 2⁻²⁹ (the same operations on
the same values; where float32 rounding is amplified, by Adam's m/√v on a tiny gradient or by a
decision that ties, float64's is amplified alike), plus EXACT_FLOAT64 (``l2compare.core.verdicts``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from l2compare.core.verdicts import EXACT_FLOAT64

# A decision ties when its float64 margin is within float32 rounding of the terms it is computed
# from: |z| ≤ TIE · Σ|terms|, TIE two float32 units of roundoff (2·2⁻²⁴).
TIE = 2.0**-23
# float32: "exact" when, at every step and in every tensor and optimizer slot, the cross-framework
# difference is within the two frameworks' own float32 rounding of that step (torch floor + keras
# floor) plus SLACK, which covers the float64 disagreement of two exact recipes (measured ≤ 1e-14 of
# max |w|; the smallest mistake tested, λ off by 1%, is 2e-6). Otherwise "close" when the median step
# differs by at most CLOSE_STEP, "wrong" above.
SLACK = 1e-9
CLOSE_STEP = 1e-4
# A step whose cross-framework difference exceeds OUTLIER (about 16 float32 ulps of max |w|) is an
# outlier; records say whether a decision tie explains it.
OUTLIER = 1e-6
# float64's share of a float32 floor: the ratio of the two unit roundoffs (module docstring).
FLOAT64_SHARE = 2.0**-29


@dataclass
class OneStep:
    """Per step (rows) and tensor (columns): the four relative differences above, and per step
    the smallest decision margin (relative, float64) of the step's forward pass (inf where not measured)."""

    tensors: list[str]
    cross: np.ndarray
    torch_floor: np.ndarray
    keras_floor: np.ndarray
    cross64: np.ndarray
    margins: np.ndarray

    @property
    def floor(self) -> np.ndarray:
        return self.torch_floor + self.keras_floor

    def excess(self, slack: float) -> np.ndarray:
        """(steps, tensors): how far the cross-framework difference exceeds what rounding explains
        (≤ 0 everywhere for the same computation)."""
        return self.cross - self.floor - slack

    def excess64(self, slack: float = EXACT_FLOAT64) -> np.ndarray:
        """(steps, tensors): the same for the float64 step (cross64 against float64's share of the floor)."""
        return self.cross64 - FLOAT64_SHARE * self.floor - slack

    def outliers(self, threshold: float) -> np.ndarray:
        """Indices of the steps whose cross-framework difference exceeds ``threshold``."""
        return np.flatnonzero(self.cross.max(1) > threshold)

    def describe(self, slack: float) -> str:
        step, col = np.unravel_index(int(self.excess(slack).argmax()), self.cross.shape)
        return (f"median {np.median(self.cross.max(1)):.2g}, max {self.cross.max():.2g} of max |w|; "
                f"worst against the rounding floor: {self.tensors[col]} at step {step + 1}, "
                f"{self.cross[step, col]:.3g} vs floor {self.floor[step, col]:.3g}; "
                f"{int(self.ties.sum())}/{len(self.ties)} steps with a decision tie")

    def explain(self, step: int, slack: float) -> str:
        """Why a step differs more than usual: ``tie`` (a decision of the step ties within float32
        rounding), ``floor`` (no tie, but the frameworks' own float32 error of the step is as large:
        Adam's first steps, where m/√v amplifies the rounding of tiny gradients), or ``unexplained``."""
        if self.ties[step]:
            return "tie"
        return "floor" if self.excess(slack)[step].max() <= 0 else "unexplained"

    def summary(self, slack: float, outlier: float) -> dict:
        """The record's one-step part: medians and maxima, per-step series (max over tensors), outliers."""
        per_step = self.cross.max(1)
        outliers = self.outliers(outlier)
        return {
            "median": float(np.median(per_step)), "max": float(per_step.max()),
            "floor_median": float(np.median(self.floor.max(1))), "max_excess": float(self.excess(slack).max()),
            "cross64_max": float(self.cross64.max()),
            "per_tensor_median": dict(zip(self.tensors, np.median(self.cross, 0).tolist())),
            "ties": int(self.ties.sum()), "min_margin": float(self.margins.min()),
            "outliers": {str(int(i) + 1): self.explain(int(i), slack) for i in outliers},
            "series": {"cross": per_step.tolist(), "floor": self.floor.max(1).tolist(),
                       "torch_floor": self.torch_floor.max(1).tolist(), "keras_floor": self.keras_floor.max(1).tolist(),
                       "margin": self.margins.tolist()},
        }

    @property
    def ties(self) -> np.ndarray:
        """(steps,) bool: a decision of this step ties within float32 rounding."""
        return self.margins < TIE

    def only(self, columns) -> "OneStep":
        """The same measurement restricted to some tensors (by column index)."""
        cols = list(columns)
        return OneStep([self.tensors[i] for i in cols], self.cross[:, cols], self.torch_floor[:, cols],
                       self.keras_floor[:, cols], self.cross64[:, cols], self.margins)


def onestep_verdict(one: OneStep) -> str:
    """float32: every step within the frameworks' own rounding, or how far the median step is off."""
    if not np.isfinite(one.cross).all():
        return "wrong"
    if one.excess(SLACK).max(initial=-np.inf) <= 0:
        return "exact"
    return "close" if float(np.median(one.cross.max(1, initial=0.0))) <= CLOSE_STEP else "wrong"


def onestep_verdict64(one: OneStep) -> str:
    """float64, from the same one-step measurement: cross64 within float64's share of the floors."""
    if not np.isfinite(one.cross64).all():
        return "wrong"
    if one.excess64().max(initial=-np.inf) <= 0:
        return "exact"
    return "close" if float(np.median(one.cross64.max(1, initial=0.0))) <= CLOSE_STEP else "wrong"


def flat(weights: dict, state: dict) -> dict[str, np.ndarray]:
    """Weights and optimizer slots after a step, side by side: "hidden/kernel", "hidden/kernel:momentum"."""
    return {**weights, **{f"{name}:{slot}": value for name, slots in state["slots"].items()
                          for slot, value in slots.items()}}


def relative(a: dict, b: dict, ref: dict, tensors: list[str]) -> np.ndarray:
    """Per tensor max |a − b| / max |ref|; a slot one side lacks counts as zeros there."""
    def get(d, n):
        return np.asarray(d[n], np.float64) if n in d else np.zeros_like(ref[n], dtype=np.float64)

    return np.array([np.abs(get(a, n) - get(b, n)).max(initial=0.0)
                     / max(float(np.abs(ref[n]).max(initial=0.0)), np.finfo(np.float64).tiny) for n in tensors])
