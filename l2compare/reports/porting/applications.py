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
           "float32_forward": "float32 forward", "float32_bound": "float32 bound", "penalty": "penalty",
           "port_s": "port (s)"}


def section(csv: Path, number: int) -> str:
    """The section, or "" when the table has not been measured."""
    if not csv.exists():
        return ""
    table = pd.read_csv(csv, dtype=str).fillna("—")
    missing = set(COLUMNS) - set(table.columns)
    if missing:
        raise ValueError(f"{csv}: columns {sorted(missing)} missing; rerun python -m l2compare.porter.applications {csv}")
    table = table[list(COLUMNS)].rename(columns=COLUMNS)
    n = len(table)
    return f"""## {number}. Every keras.applications model

The {n} keras.applications models measured here, built as users build them (`weights=None`, the smallest input, 10
classes, `kernel_regularizer=l2` on every kernel through `keras.models.clone_model`, BatchNorm statistics and biases
randomized so that no layer is an identity), ported, and run on the same random batch. The forward columns are
max |Δ| relative to max |Keras output|; float64 must stay ≤ 1e-12 and float32 ≤ its bound (1e-5, or, for deep nets
whose own float32 rounding is larger, the two frameworks' float32-vs-float64 differences measured in the same run
plus the float64 difference); penalty is |Δ| relative to Keras's `sum(model.losses)` in float64 (a blank: the model
was measured in float32 only, its float64 copy not fitting in memory). Written by
`python -m l2compare.porter.applications results/applications.csv`; the same bounds are asserted by
`comparisons/test_port_applications.py` (the smallest model of each family in `make test`, all in `make test-slow`).

{markdown(table)}
"""
