"""The run tables (article, recipes, sweep, ``l2compare compare``) and the text helpers all reports share.

Each ``*_table`` takes a ``frames.runs_frame`` and returns every number (mean, std, CI, n per metric,
for the CSV); each ``*_markdown`` renders a table readably. The article and sweep tables put one side
per framework column side by side (``frames.sides_of``): what the article wrote, and its exact port.
"""
from __future__ import annotations

import pandas as pd

from l2compare.reports.frames import (PAIR_ON, RECIPES_COLUMN, REFERENCE_COLUMN, aggregate_runs, all_sides,
    column_label, drop_unused_diverged, framework_of, norm_columns, on_sides, ordered, side_label, sides_of)
from l2compare.reports.stats import fmt_mean_std

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


def lam(l2: float) -> str:
    return "none" if l2 == 0 else f"{l2:g}"


def _ms(row, column: str, digits: int = 3) -> str:
    return fmt_mean_std(row.get(f"{column}_mean"), row.get(f"{column}_std"), digits)


def ci_text(row, column: str, signed: bool, digits: int = 3) -> str:
    """"+0.012 [-0.004, +0.028]": mean and 95% CI; the mean alone when there is no interval."""
    mean, low, high = (row.get(f"{column}_{s}") for s in ("mean", "ci95_low", "ci95_high"))
    if pd.isna(mean):
        return "—"
    f = f"{{:{'+' if signed else ''}.{digits}f}}"
    return f.format(mean) if pd.isna(low) else f"{f.format(mean)} [{f.format(low)}, {f.format(high)}]"


def _n_text(*ns) -> str:
    """One count when the sides agree, else "3 / 2"."""
    ns = [int(n) if not pd.isna(n) else 0 for n in ns]
    return str(ns[0]) if len(set(ns)) == 1 else " / ".join(map(str, ns))


# ---------------------------------------------------------------- article


def article_table(df: pd.DataFrame) -> pd.DataFrame:
    """Rows model × λ; per side (<column>_ prefixes: keras_, torch_) mean, std, CI, n of each metric."""
    df = on_sides(df)
    norms = [c for c in norm_columns(df.columns) if df[c].notna().any()]
    agg = aggregate_runs(df, ["model", "l2", "framework", "regularization"],
                         ["test_accuracy", "train_accuracy", "regularized_norm"] + norms)
    return drop_unused_diverged(side_by_side(agg, ["model", "l2"]))


def side_by_side(agg: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Long (one row per side) -> wide: each side's numbers prefixed with its column's name."""
    wide = None
    for framework, regularization in sides_of(agg):
        part = agg[agg["framework"].eq(framework) & agg["regularization"].eq(regularization)]
        part = part.drop(columns=["framework", "regularization"])
        part = part.rename(columns={c: f"{framework}_{c}" for c in part.columns if c not in keys})
        wide = part if wide is None else wide.merge(part, on=keys, how="outer")
    return pd.DataFrame(columns=keys) if wide is None else ordered(wide, keys)


def article_markdown(table: pd.DataFrame) -> str:
    summary = side_table(table, [("test acc", "test_accuracy"), ("train acc", "train_accuracy"),
                                 ("‖w‖ reg", "regularized_norm")])
    return (f"{markdown(summary)}\n\n### Per-tensor L2 norms (mean ± std over seeds)\n\n"
            f"{markdown(_tensor_table(table))}\n")


def _wide_sides(table: pd.DataFrame, metric: str) -> list[str]:
    """The columns a wide table (or its CSV read back) has a side for."""
    return [fw for fw, _ in all_sides() if f"{fw}_{metric}_mean" in table.columns]


def side_table(table: pd.DataFrame, metrics: list[tuple[str, str]]) -> pd.DataFrame:
    """Readable side-by-side rows: model, λ, then each metric for each side (Keras l2, torch penalty, ...)."""
    sides = _wide_sides(table, metrics[0][1])
    rows = []
    for _, r in table.iterrows():
        row = {"model": r["model"], "λ": lam(r["l2"])}
        for label, metric in metrics:
            for fw in sides:
                row[f"{label} ({side_label(fw)})"] = _ms(r, f"{fw}_{metric}")
        row["n"] = _n_text(*(r.get(f"{fw}_{metrics[0][1]}_n") for fw in sides))
        if any(f"{fw}_diverged" in r for fw in sides):
            row[f"diverged ({' / '.join(column_label(fw) for fw in sides)})"] = " / ".join(
                "0" if pd.isna(r.get(f"{fw}_diverged")) else str(int(r[f"{fw}_diverged"])) for fw in sides)
        rows.append(row)
    return pd.DataFrame(rows)


def _tensor_table(table: pd.DataFrame) -> pd.DataFrame:
    """Rows model × λ × tensor (only tensors the model has), the sides side by side."""
    sides = _wide_sides(table, "test_accuracy")
    tensors = list(dict.fromkeys(c[len(f"{fw}_"):-len("_mean")] for fw in sides for c in table.columns
                                 if c.startswith(f"{fw}_norm:") and c.endswith("_mean")))
    rows = []
    for _, r in table.iterrows():
        for t in tensors:
            if all(pd.isna(r.get(f"{fw}_{t}_mean")) for fw in sides):
                continue
            rows.append({"model": r["model"], "λ": lam(r["l2"]), "tensor": t[len("norm:"):],
                         **{side_label(fw): _ms(r, f"{fw}_{t}") for fw in sides}})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- recipes


def recipes_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per model × optimizer: Keras l2 on TensorFlow (reference), Keras l2 on each other backend, then
    each torch recipe, with per-seed paired Δ accuracy (run − reference) and norm ratio (run /
    reference), each summarized with its 95% CI."""
    is_reference = df["framework"].eq(REFERENCE_COLUMN) & df["regularization"].eq("l2")
    keras = df[is_reference]
    backends = df["framework"].map(lambda name: name != REFERENCE_COLUMN and framework_of(name) == "keras")
    compared = df[(backends & df["regularization"].eq("l2")) | df["framework"].eq(RECIPES_COLUMN)]
    paired = _paired(compared, keras)
    by = ["model", "optimizer", "framework", "regularization"]
    out = pd.concat([aggregate_runs(keras, by, ["test_accuracy", "regularized_norm"]),
                     aggregate_runs(paired, by, ["test_accuracy", "regularized_norm", "delta_accuracy",
                                                 "norm_ratio"])],
                    ignore_index=True)
    return drop_unused_diverged(ordered(out, by))


def _paired(torch: pd.DataFrame, keras: pd.DataFrame) -> pd.DataFrame:
    """Each torch run beside the Keras run with the same configuration and seed.

    Pairing by seed removes the seed-to-seed spread both sides share; a duplicated Keras run
    would make the pairing ambiguous, so it is an error (validate), not a silent pick.
    """
    ref = keras[PAIR_ON + ["test_accuracy", "regularized_norm"]]
    out = torch.merge(ref, on=PAIR_ON, how="left", suffixes=("", "_keras"), validate="many_to_one")
    out["delta_accuracy"] = out["test_accuracy"] - out["test_accuracy_keras"]
    out["norm_ratio"] = out["regularized_norm"] / out["regularized_norm_keras"]
    return out


def recipes_markdown(table: pd.DataFrame) -> str:
    parts = []
    for (model, optimizer), group in table.groupby(["model", "optimizer"], sort=False):
        rows = [_recipe_row(r) for _, r in group.iterrows()]
        parts.append(f"### {model}, {optimizer}\n\n{markdown(pd.DataFrame(rows))}\n")
    return "\n".join(parts)


def _recipe_row(r) -> dict:
    keras = r["framework"] == REFERENCE_COLUMN
    label = column_label(r["framework"])
    row = {"run": f"{label} l2 (reference)" if keras else f"{label} {r['regularization']}",
           "test acc": _ms(r, "test_accuracy"), "‖w‖ reg": _ms(r, "regularized_norm"),
           "Δ acc vs Keras [95% CI]": "" if keras else ci_text(r, "delta_accuracy", signed=True),
           "norm ratio vs Keras [95% CI]": "" if keras else ci_text(r, "norm_ratio", signed=False),
           "n": _n_text(r["test_accuracy_n"])}
    if "diverged" in r:
        row["diverged"] = _n_text(r["diverged"])
    return row


# ---------------------------------------------------------------- sweep


def sweep_table(df: pd.DataFrame) -> pd.DataFrame:
    """Rows model × λ × framework: test accuracy and regularized norm, mean, std, CI, n."""
    by = ["model", "l2", "framework", "regularization"]
    out = aggregate_runs(on_sides(df), by, ["test_accuracy", "regularized_norm"])
    return drop_unused_diverged(ordered(out, by))


def sweep_markdown(table: pd.DataFrame) -> str:
    wide = side_by_side(table, ["model", "l2"])
    return markdown(side_table(wide, [("test acc", "test_accuracy"), ("‖w‖ reg", "regularized_norm")])) + "\n"


# ---------------------------------------------------------------- compare


def compare_table(df: pd.DataFrame) -> str:
    """`l2compare compare`: one row per framework / regularization, mean ± std over seeds."""
    metrics = ["test_accuracy", "train_accuracy", "regularized_norm", "loss"]
    agg = aggregate_runs(df, ["framework", "regularization"], metrics)
    rows = [{"framework": r["framework"], "regularization": r["regularization"],
             **{m: _ms(r, m) for m in metrics}, "n": int(r["test_accuracy_n"])} for _, r in agg.iterrows()]
    return markdown(pd.DataFrame(rows))
