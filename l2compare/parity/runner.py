"""The parity runner: is a torch recipe the same computation as a Keras configuration?

Both sides start from Keras's initial weights (moved as canonical weights), see the
same batches in the same order, and train for the same steps; torch uses the
Keras-exact optimizers unless the case asks for a stock one. We record the
per-step max |Δw| of every tensor and the difference of the reported losses.
float64 is judged on that trajectory. float32 is judged one step at a time from
Keras's states (``l2compare.parity.onestep``): a float32 trajectory parts wherever a
decision ties within rounding, differently on every CPU; its drift is recorded
beside torch's own drift from a 1-ulp nudged start (the envelope).

Entry point: ``run(ParityCase(...)) -> ParityResult``. This module imports both
frameworks (in-process), so the run engine calls it in a worker, never in its parent.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from l2compare.core.verdicts import one_ulp_up, trajectory_verdict
from l2compare.parity.cases import ParityCase, keras_side, parity_data
from l2compare.parity.sides import keras_trajectory, run_torch

# float64: the trajectory decides (l2compare.core.verdicts: EXACT_FLOAT64, CLOSE, trajectory_verdict).
# float32: teacher-forced one step at a time (l2compare.parity.onestep), by the judge that verify shares
# (l2compare.core.onestep: SLACK, CLOSE_STEP, OUTLIER and onestep_verdict, explained there).
from l2compare.core.onestep import CLOSE_STEP, OUTLIER, SLACK, onestep_verdict  # noqa: E402,F401


@dataclass
class ParityResult:
    case: ParityCase
    tensors: list[str]
    max_dw: np.ndarray  # (steps, tensors): max |w_keras − w_torch| after each step
    loss_diff: dict[str, float]  # history key -> max over epochs of |Δ|
    history: dict[str, list[dict]]
    onestep: "onestep.OneStep | None" = None  # float32 only: teacher-forced one-step parity
    envelope: np.ndarray | None = None  # float32 only: (steps, tensors) torch vs torch from a 1-ulp nudged start

    @property
    def steps(self) -> int:
        return self.max_dw.shape[0]

    @property
    def worst(self) -> float:
        """Max |Δw| over all steps and tensors."""
        return float(self.max_dw.max())

    def worst_tensor(self) -> tuple[str, int, float]:
        """(tensor, step, |Δ|) of the largest difference, for failure messages."""
        step, col = np.unravel_index(int(self.max_dw.argmax()), self.max_dw.shape)
        return self.tensors[col], int(step) + 1, float(self.max_dw[step, col])

    @property
    def verdict(self) -> str:
        if self.onestep is None:
            return trajectory_verdict(self.worst)
        return onestep_verdict(self.onestep)

    def describe(self) -> str:
        name, step, diff = self.worst_tensor()
        text = (f"{self.case.keras_config}/{self.case.optimizer.label} vs {self.case.recipe} ({self.case.dtype}): "
                f"{self.verdict}; trajectory max |Δw| = {diff:.3g} in {name} at step {step}/{self.steps}")
        if self.envelope is not None:
            text += f" (torch's own 1-ulp envelope {self.envelope.max():.3g})"
        if self.onestep is not None:
            text += "; one step: " + self.onestep.describe(SLACK)
        return text + f"; loss |Δ| = {self.loss_diff['loss']:.3g}"


def run(case: ParityCase) -> ParityResult:
    """Train both sides for ``case.epochs`` epochs and compare them after every step; in float32,
    also one step at a time from Keras's states (``l2compare.parity.onestep``) and against torch's own
    1-ulp envelope."""
    from l2compare.parity import onestep

    x, y = parity_data(case.n_samples, case.dataset)
    traj = keras_trajectory(keras_side(case))
    torch_result = run_torch(case, traj.initial, x, y, traj.order)
    tensors = list(traj.initial)
    max_dw = _max_dw(traj.steps, torch_result.steps, tensors)
    loss_diff = {key: max(abs(a[key] - b[key]) for a, b in zip(traj.history, torch_result.history))
                 for key in ("loss", "data_loss", "penalty")}
    one, envelope = None, None
    if case.dtype == "float32":
        one = onestep.run(case, traj, x, y)
        nudged = run_torch(case, one_ulp_up(traj.initial), x, y, traj.order)
        envelope = _max_dw(torch_result.steps, nudged.steps, tensors)
    return ParityResult(case, tensors, max_dw, loss_diff, {"keras": traj.history, "torch": torch_result.history},
                        onestep=one, envelope=envelope)


def _max_dw(a: list[dict], b: list[dict], tensors: list[str]) -> np.ndarray:
    """(steps, tensors): max |a − b| after each step."""
    return np.array([[np.abs(sa[n] - sb[n]).max() for n in tensors] for sa, sb in zip(a, b)], dtype=np.float64)
