"""Small text and figure helpers shared by the report writers (report.py, parity_report.py)."""
from __future__ import annotations

import pandas as pd

DPI = 120


def markdown(df: pd.DataFrame) -> str:
    # disable_numparse: keep our formatted strings ("0.01", "none") exactly as written
    return df.to_markdown(index=False, disable_numparse=True)


def distinct(values) -> str:
    """The distinct non-None values, in order, as one comma-separated string."""
    seen = [v for v in dict.fromkeys(values) if v is not None]
    return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in seen) or "—"


def sci(value) -> str:
    """1.2e-07, or — when missing."""
    return "—" if value is None or pd.isna(value) else f"{value:.1e}"
