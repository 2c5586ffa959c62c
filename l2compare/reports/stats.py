"""Statistics over seeds, honest about small samples.

Sweeps run a handful of seeds per configuration, so intervals use Student's t
(not 1.96), the sample standard deviation (ddof=1), and say so when there is
too little data (NaN) instead of printing a misleading zero. Missing values
(None or NaN, e.g. a diverged run) are dropped but counted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy import stats as _scipy_stats

__all__ = ["summarize", "aggregate", "fmt_mean_std", "SUFFIXES"]

CONFIDENCE = 0.95
# Per-column outputs of `aggregate`, in order: f"{column}_{suffix}".
SUFFIXES = ("mean", "std", "ci95_low", "ci95_high", "n")


def summarize(values: Iterable[float | None]) -> dict:
    """n, n_missing, mean, std (ddof=1), and the 95% Student-t interval of the mean.

    None and NaN are ignored and counted in `n_missing`. With n < 2 the std
    and the interval are NaN (one sample says nothing about spread); with
    n == 0 the mean is NaN too.
    """
    # pd.isna also catches pd.NA / NaT, which pandas puts in object columns.
    raw = [np.nan if v is None or pd.isna(v) else float(v) for v in values]
    x = np.asarray(raw, dtype=np.float64)
    kept = x[~np.isnan(x)]
    n = int(kept.size)
    mean = float(kept.mean()) if n else math.nan
    std = float(kept.std(ddof=1)) if n >= 2 else math.nan
    half = _half_width(std, n)
    return {
        "n": n,
        "n_missing": int(x.size - n),
        "mean": mean,
        "std": std,
        "ci95_low": mean - half,
        "ci95_high": mean + half,
    }


def _half_width(std: float, n: int) -> float:
    """t_{0.975, n-1} · std / √n; NaN when n < 2."""
    if n < 2:
        return math.nan
    t = float(_scipy_stats.t.ppf(0.5 + CONFIDENCE / 2, df=n - 1))
    return t * std / math.sqrt(n)


def aggregate(df: pd.DataFrame, by: list[str], columns: list[str]) -> pd.DataFrame:
    """One row per group of `by`, with c_mean, c_std, c_ci95_low, c_ci95_high, c_n per column.

    Groups keep their order of first appearance (sort=False) and missing group
    keys form their own group (dropna=False), so no run silently disappears.
    An empty `by` summarizes the whole frame in one row.
    """
    by, columns = list(by), list(columns)
    missing = [c for c in by + columns if c not in df.columns]
    if missing:
        raise KeyError(f"aggregate: no column(s) {missing} in {list(df.columns)}")
    out_columns = by + [f"{c}_{s}" for c in columns for s in SUFFIXES]
    if by:
        groups = df.groupby(by, sort=False, dropna=False)
    else:
        groups = [((), df)] if len(df) else []
    rows = []
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(by, key))
        for c in columns:
            summary = summarize(group[c].tolist())
            for s in SUFFIXES:
                row[f"{c}_{s}"] = summary[s]
        rows.append(row)
    return pd.DataFrame(rows, columns=out_columns)


def fmt_mean_std(mean: float | None, std: float | None, digits: int = 3) -> str:
    """"0.912 ± 0.004"; "0.912" without a std; "—" without a mean."""
    if _missing(mean):
        return "—"
    if _missing(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _missing(value: float | None) -> bool:
    return value is None or bool(pd.isna(value))
