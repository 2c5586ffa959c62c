"""Run records -> pandas frames, and the grouping helpers every run table shares.

``runs_frame``: one row per run; ``epochs_frame``: one row per run and epoch. The sides of the
article and sweep tables come from the framework column registry (``l2compare.core.columns``): one side per
registered column, that framework's reference configuration (``l2compare.core.names.REFERENCE``).
Plain pandas: imports no framework.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from l2compare.core import columns
from l2compare.core.names import KERAS_CONFIGS, MODELS, REFERENCE, TORCH_RECIPES
from l2compare.core.spec import RunSpec
from l2compare.reports.stats import aggregate

ID_COLUMNS = ["key", "model", "framework", "regularization", "l2", "optimizer", "mode", "dataset",
              "epochs", "seed", "dtype", "status"]
# A run's metrics; NaN for a diverged run (its last numbers describe a broken model).
METRICS = ["test_accuracy", "train_accuracy", "loss", "regularized_sq", "regularized_norm"]
TIMING = ["wall_time_s", "steps_per_s"]
# Runs of the same configuration and seed are paired across frameworks on these columns.
PAIR_ON = ["model", "l2", "optimizer", "mode", "dataset", "epochs", "dtype", "seed"]
# The column the recipes table pairs every torch recipe against (its Keras l2 runs), and the column
# whose recipes it compares.
REFERENCE_COLUMN, RECIPES_COLUMN = "keras", "torch"


def _order(name: str) -> tuple:
    """The canonical order of an id column's values; frameworks: the registry's, read when sorting."""
    if name == "framework":
        return columns.names()
    return {"model": MODELS, "regularization": KERAS_CONFIGS + TORCH_RECIPES,
            "optimizer": ("sgd", "momentum", "adam", "adamw")}.get(name, ())


# ---------------------------------------------------------------- frames


def runs_frame(records: list[dict]) -> pd.DataFrame:
    """One row per run record: id columns, final metrics, one ``norm:<tensor>`` per tensor, timing."""
    rows = [{**_ids(r), **_metrics(r), **_timing(r)} for r in records]
    df = pd.DataFrame(rows)
    norms = norm_columns(df.columns)
    df = df.reindex(columns=ID_COLUMNS + METRICS + norms + TIMING)
    for c in METRICS + norms + TIMING:
        df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    return df


def epochs_frame(records: list[dict]) -> pd.DataFrame:
    """Long format: one row per (record, epoch) with the id columns and that epoch's numbers."""
    rows = []
    for r in records:
        ids = _ids(r)
        for i, h in enumerate(r.get("history") or [], start=1):
            rows.append({**ids, "epoch": h.get("epoch", i), "loss": h.get("loss"),
                         "test_accuracy": h.get("test_accuracy"), "accuracy": h.get("accuracy"),
                         "regularized_norm": _sqrt(h.get("regularized_sq"))})
    values = ["epoch", "loss", "test_accuracy", "accuracy", "regularized_norm"]
    df = pd.DataFrame(rows).reindex(columns=ID_COLUMNS + values)
    for c in values[1:]:
        df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    return df


def _ids(record: dict) -> dict:
    spec = RunSpec.from_dict(record["spec"])  # validates, and gives the optimizer's table label
    return {"key": record["key"], "model": spec.model, "framework": spec.framework,
            "regularization": spec.regularization, "l2": float(spec.l2), "optimizer": spec.optimizer.label,
            "mode": spec.mode, "dataset": spec.dataset, "epochs": spec.epochs, "seed": spec.seed,
            "dtype": spec.dtype, "status": record.get("status", "ok")}


def _metrics(record: dict) -> dict:
    final, norms = record.get("final") or {}, record.get("norms") or {}
    row = {"test_accuracy": final.get("test_accuracy"), "train_accuracy": final.get("accuracy"),
           "loss": final.get("loss"), "regularized_sq": record.get("regularized_sq"),
           "regularized_norm": _sqrt(record.get("regularized_sq")),
           **{f"norm:{name}": value for name, value in norms.items()}}
    if record.get("status", "ok") != "ok":
        row = {k: math.nan for k in row}
    return row


def _timing(record: dict) -> dict:
    return {c: record.get(c) for c in TIMING}


def _sqrt(value) -> float:
    return math.sqrt(value) if value is not None and not pd.isna(value) else math.nan


def norm_columns(names) -> list[str]:
    """norm:<layer>/<kind>, layers alphabetically (conv1, conv2, hidden, out), kernel before bias."""
    norms = [c for c in names if c.startswith("norm:")]
    return sorted(norms, key=lambda c: (c[5:].split("/")[0], "kernel" not in c, c))


# ---------------------------------------------------------------- sides


def all_sides() -> list[tuple[str, str]]:
    """(column, regularization): every registered column with its framework's reference, in registry order."""
    return [(c.name, REFERENCE[c.framework]) for c in columns.all_columns()]


def side_label(name: str) -> str:
    """"Keras l2", "torch penalty": the column's label and its reference configuration."""
    column = columns.get(name)
    return f"{column.label} {REFERENCE[column.framework]}"


def column_label(name: str) -> str:
    """The column's short label; a column no longer registered (an old record's) is its own name."""
    return columns.get(name).label if name in columns.names() else name


def framework_of(name: str) -> str:
    """A column's framework, which says its vocabulary (keras: Keras on any backend); a column no
    longer registered is its own."""
    return columns.get(name).framework if name in columns.names() else name


def sides_of(df: pd.DataFrame) -> list[tuple[str, str]]:
    """The sides that have rows in ``df`` (long form), so that a column with no runs changes no table."""
    return [(fw, reg) for fw, reg in all_sides()
            if (df["framework"].eq(fw) & df["regularization"].eq(reg)).any()]


def on_sides(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``df`` that belong to some side."""
    mask = pd.Series(False, index=df.index)
    for framework, regularization in all_sides():
        mask = mask | (df["framework"].eq(framework) & df["regularization"].eq(regularization))
    return df[mask]


# ---------------------------------------------------------------- grouping


def ordered(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Sort by the project's canonical orders (models, frameworks, recipes), numbers ascending."""
    def key(s: pd.Series):
        order = _order(s.name)
        if order:
            return s.map({v: i for i, v in enumerate(order)}).fillna(len(order))
        return s
    return df.sort_values(by, key=key, kind="stable").reset_index(drop=True)


def aggregate_runs(df: pd.DataFrame, by: list[str], metrics: list[str]) -> pd.DataFrame:
    """stats.aggregate plus ``diverged``: how many runs of the group diverged (they are NaN above)."""
    out = aggregate(df, by, metrics)
    counts = df.assign(diverged=df["status"].eq("diverged").astype(int)).groupby(
        by, sort=False, dropna=False)["diverged"].sum().reset_index()
    return out.merge(counts, on=by, how="left")


def drop_unused_diverged(df: pd.DataFrame) -> pd.DataFrame:
    """Tables show diverged counts only when some run diverged."""
    cols = [c for c in df.columns if c == "diverged" or c.endswith("_diverged")]
    # nansum: a side missing from an outer merge has NaN counts
    return df if np.nansum(df[cols].to_numpy(float)) > 0 else df.drop(columns=cols)


def of_experiment(df: pd.DataFrame, experiments: dict[str, set[str]], name: str) -> pd.DataFrame:
    """The rows of ``df`` whose run belongs to experiment ``name``."""
    return df[df["key"].isin(experiments.get(name, set()))]
