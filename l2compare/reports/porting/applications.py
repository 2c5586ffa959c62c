"""PORTING.md's keras.applications section: every application ported, from ``applications.csv``.

The CSV is the porter's own measurement (``python -m l2compare.porter.applications results/applications.csv``,
resumable; the slow tests assert the same bounds): each application built as users build it, with L2 on
every kernel and its BatchNorm statistics and biases randomized, then ported and run in float64 and float32.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from l2compare.reports.tables import markdown

COLUMNS = {"application": "application", "parameters": "parameters", "float64_forward": "float64 forward",
           "float64_bound": "float64 bound", "float32_forward": "float32 forward", "float32_bound": "float32 bound",
           "penalty": "penalty", "port_s": "port (s)"}


def _within(value: str, bound: str) -> bool:
    """A measured difference within its bound; "not run" (a float64 copy that does not fit) passes."""
    if value == "not run":
        return True
    try:
        return float(value) <= float(bound)
    except ValueError:
        return False


def verdict(row: pd.Series) -> str:
    ok = _within(row["float64_forward"], row["float64_bound"]) and _within(row["float32_forward"], row["float32_bound"])
    return "exact" if ok else "**not exact**"


def section(csv: Path, number: int) -> str:
    """The section, or "" when the table has not been measured."""
    if not csv.exists():
        return ""
    table = pd.read_csv(csv, dtype=str).fillna("—")
    missing = set(COLUMNS) - set(table.columns)
    if missing:
        raise ValueError(f"{csv}: columns {sorted(missing)} missing; rerun python -m l2compare.porter.applications {csv}")
    table["verdict"] = table.apply(verdict, axis=1)
    table = table[list(COLUMNS) + ["verdict"]].rename(columns=COLUMNS)
    n, exact = len(table), int((table["verdict"] == "exact").sum())
    return f"""## {number}. Every keras.applications model

The {n} keras.applications models measured here, built as users build them (`weights=None`, the smallest input, 10
classes, `kernel_regularizer=l2` on every kernel through `keras.models.clone_model`, BatchNorm statistics and biases
randomized so that no layer is an identity), ported, and run on the same random batch: {exact} of {n} are exact.
EfficientNetV2M and L get a milder randomization (±10%), and L its residual branches halved (each block's last
BatchNorm γ × 0.5): with Keras's own initial values L is chaotic, and Keras alone moves its float64 output by 78%
under a 1e-15 change of its input, so no port could be compared with it
(`comparisons/test_port_applications.py::test_efficientnetv2l_is_chaotic_undamped`).
The forward columns are max |Δ| relative to max |Keras output|. The float64 bound is 1e-12, or, for deep nets that
amplify rounding past it, 1e-12 + 2⁻²⁹ × Keras's own float32 error measured on a float32 twin with the same weights
(first-order rounding scales with the unit roundoff, 2⁻⁵³/2⁻²⁴); the float32 bound is 1e-5, or the two frameworks'
own float32-vs-float64 differences measured in the same run plus the float64 bound. Penalty is |Δ| relative to
Keras's `sum(model.losses)`, in float64 ("not run": the float64 copy does not fit in memory, so the model is
measured in float32 only). Written by
`python -m l2compare.porter.applications results/applications.csv`; the same bounds are asserted by
`comparisons/test_port_applications.py`: every application in both dtypes, alone and as a frozen and as a
trained transfer-learning backbone, in `make test-slow`; `make test` ports MobileNetV3Small and EfficientNetB0 in
float32 and ConvNeXt's builder at narrow widths in float64.

{markdown(table)}
"""
