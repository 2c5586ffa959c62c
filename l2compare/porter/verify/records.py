"""verify's records: one plain dict per dtype × recipe, the verdict from the one-step measurement and the
free-running trajectory beside it as information (JSON-ready: the CLI appends them to a JSON-lines file)."""
from __future__ import annotations

import keras
import numpy as np
import torch

from l2compare.core.onestep import CLOSE_STEP, FLOAT64_SHARE, SLACK, OneStep, onestep_verdict, onestep_verdict64
from l2compare.core.verdicts import EXACT_FLOAT64


def _floats(values) -> list[float]:
    return [float(v) for v in values]


def judged_columns(tensors: list[str], left_out: dict) -> list[int]:
    """The columns the verdict reads: every tensor and slot but the rounding-driven ones (and their slots)."""
    cols = [i for i, t in enumerate(tensors) if t.split(":")[0] not in left_out]
    return cols or list(range(len(tensors)))


def onestep_part(one: OneStep, dtype: str) -> dict:
    """The verdict and what it read: per step the largest difference and what rounding allows there."""
    if dtype == "float32":
        cross, allowed, verdict = one.cross, one.floor + SLACK, onestep_verdict(one)
    else:
        cross, allowed, verdict = one.cross64, FLOAT64_SHARE * one.floor + EXACT_FLOAT64, onestep_verdict64(one)
    excess = np.where(np.isnan(cross), np.inf, cross - allowed)
    if not excess.size:
        return {"verdict": verdict, "onestep": None, "first_divergence": None}
    # The worst tensor: the one nearest its bound (largest difference / allowed), which is the one past it
    # furthest in proportion if any is.
    ratio = np.where(np.isnan(cross), np.inf, cross / allowed)
    step, col = np.unravel_index(int(ratio.argmax()), ratio.shape)
    past = excess > 0
    first = None
    if past.any():
        at = int(past.any(axis=1).argmax())
        first = {"step": at + 1, "tensors": [t for t, bad in zip(one.tensors, past[at]) if bad]}
    return {
        "verdict": verdict,
        "onestep": {"max": float(np.nanmax(cross)) if np.isfinite(cross).any() else float("nan"),
                    "median_step": float(np.median(cross.max(1))),
                    "worst_tensor": one.tensors[col], "worst_step": int(step) + 1,
                    "at_worst": float(cross[step, col]), "allowed_at_worst": float(allowed[step, col]),
                    "max_excess": float(excess.max()),
                    "per_step": _floats(cross.max(1)), "allowed_per_step": _floats(allowed.max(1)),
                    "torch_floor_max": float(one.torch_floor.max()), "keras_floor_max": float(one.keras_floor.max()),
                    "cross64_max": float(one.cross64.max())},
        "first_divergence": first,
    }


def _worst(diff: np.ndarray) -> tuple[int, int, float]:
    """(step, column, |Δ|) of the largest difference; a NaN (a diverged side) counts as the largest."""
    if not diff.size:
        return 0, 0, 0.0
    step, col = np.unravel_index(int(np.where(np.isnan(diff), np.inf, diff).argmax()), diff.shape)
    return int(step), int(col), float(diff[step, col])


def record(info: dict, recipe: str, one: OneStep, judged: list[int], keys: list[str], free_run: tuple,
           left_out: dict) -> dict:
    """One dtype × recipe. ``free_run``: (its recipe, (steps, keys) max |Δ| of that recipe trained freely
    beside Keras, the same for torch against torch from a 1-ulp nudged start, Keras's and torch's logged
    losses): information about the model's chaos, shared by the dtype's records."""
    dtype, optimizer = info["dtype"], info["optimizer"]
    lead, trajectory, envelope, keras_losses, torch_losses = free_run
    verdict = onestep_part(one.only(judged), dtype)
    keep = [i for i, k in enumerate(keys) if k not in left_out] or list(range(len(keys)))
    traj = trajectory[:, keep]
    step, col, worst = _worst(traj)
    env = envelope[:, keep].max(axis=1, initial=0.0)
    left = [k for k in keys if k in left_out and len(keep) < len(keys)]
    notes = list(info["notes"])
    if recipe == "stock" and optimizer in ("adam", "adamw"):
        notes.append("stock torch Adam adds ε inside the bias correction (Keras: outside)")
    if recipe == "stock" and optimizer == "momentum":
        notes.append("stock torch SGD momentum is b = μ·b + g; w −= lr·b (Keras: m = μ·m − lr·g; w += m)")
    if recipe == "stock" and optimizer == "adamw":
        notes.append("stock torch AdamW decays as w·(1 − lr·wd) (Keras: w − w·wd·lr)")
    loss_diff = float(np.max(np.abs(np.array(keras_losses) - np.array(torch_losses)))) if torch_losses else None
    _, all_col, all_worst = _worst(trajectory)
    return {
        **{k: info[k] for k in ("model", "layers", "dtype", "optimizer")},
        "recipe": recipe, "steps": int(len(one.cross)),
        **{k: info[k] for k in ("batch_size", "loss", "data", "seed", "regularized")},
        **verdict,
        "trajectory_recipe": lead,
        "max_dw": worst, "max_dw_tensor": keys[keep[col]] if keys else None, "max_dw_step": step + 1,
        "max_dw_per_step": _floats(traj.max(axis=1, initial=0.0)),
        "envelope_max": float(env.max(initial=0.0)), "envelope_per_step": _floats(env),
        "left_out": left, "left_out_reasons": {k: left_out[k] for k in left},
        "left_out_max_dw": _worst(trajectory[:, [keys.index(k) for k in left]])[2] if left else None,
        "max_dw_all": all_worst, "max_dw_tensor_all": keys[all_col] if keys else None,
        "sparse_adam": info["sparse_adam"], "loss_diff": loss_diff,
        "rule": RULES[dtype], "left_out_rule": LEFT_OUT_RULE if left else None,
        "keras_version": keras.__version__, "backend": keras.backend.backend(), "torch_version": torch.__version__,
        "notes": notes,
    }


RULES = {
    "float32": f"float32: one step at a time from Keras's state (weights, buffers, optimizer slots): exact when every "
               f"tensor and slot, at every step, differs from Keras's step by at most torch's own float32 rounding of "
               f"that step + Keras's own (each against the same step in float64) + {SLACK:g} of its max |·|; else "
               f"close when the median step differs by ≤ {CLOSE_STEP:g}, else wrong",
    "float64": f"float64: the same steps in float64: exact when every tensor and slot differs from Keras's float64 step "
               f"by at most 2⁻²⁹ × the float32 floors (float64's share of the same rounding) + {EXACT_FLOAT64:g} of its "
               f"max |·|; else close when the median step differs by ≤ {CLOSE_STEP:g}, else wrong",
}
LEFT_OUT_RULE = ("tensors whose float64 gradient is zero up to rounding (≤ 1e-12 of the largest), and the buffers "
                 "they feed, follow rounding noise (Adam scales it to lr-sized steps): left out of both verdicts, "
                 "named, their differences shown apart")
