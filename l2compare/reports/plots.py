"""The run plots (PNG): regularized norm per epoch, the λ sweep, and the torch recipes against Keras.

Each ``plot_*`` draws from a frame or table of ``frames``/``tables`` and returns False when there is
nothing to draw. The sides drawn are those with records (``frames.sides_of``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure  # no pyplot: no global backend state, safe in any process
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from l2compare.core.names import MODELS
from l2compare.engine.files import atomic_path
from l2compare.engine.experiments import ARTICLE_LAMBDA
from l2compare.reports.frames import REFERENCE_COLUMN, column_label, on_sides, side_label, sides_of
from l2compare.reports.tables import DPI, lam


def plot_norm_vs_epoch(epochs: pd.DataFrame, path: Path) -> bool:
    """Article runs at λ = ARTICLE_LAMBDA: regularized norm per epoch, mean ± std band over seeds."""
    data = on_sides(epochs[epochs["l2"].eq(ARTICLE_LAMBDA)])
    models = [m for m in MODELS if m in set(data["model"])]
    if not models:
        return False
    fig = Figure(figsize=(4.2 * len(models), 3.8), layout="constrained")
    for ax, model in zip(fig.subplots(1, len(models), squeeze=False)[0], models):
        for framework, _ in sides_of(data):
            side = data[data["model"].eq(model) & data["framework"].eq(framework)]
            stats = side.groupby("epoch")["regularized_norm"].agg(["mean", "std"]).fillna({"std": 0.0})
            line, = ax.plot(stats.index, stats["mean"], marker="o", label=side_label(framework))
            ax.fill_between(stats.index, stats["mean"] - stats["std"], stats["mean"] + stats["std"],
                            color=line.get_color(), alpha=0.2)
        ax.set(title=model, xlabel="epoch", ylabel="‖w‖ of regularized tensors")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"Regularized weight norm during training, λ = {ARTICLE_LAMBDA:g} (mean ± std over seeds)")
    with atomic_path(path) as tmp:  # never half a PNG under the real name
        fig.savefig(tmp, dpi=DPI)
    return True


def plot_sweep(table: pd.DataFrame, path: Path) -> bool:
    """2 × models grid: test accuracy and regularized norm (log) against λ, categorical x axis
    so λ = 0 sits beside the others at even spacing; error bars are ± std over seeds."""
    models = [m for m in MODELS if m in set(table["model"])]
    if not models:
        return False
    sides = sides_of(table)
    fig = Figure(figsize=(5.0 * len(models), 7.0), layout="constrained")
    axes = fig.subplots(2, len(models), squeeze=False)
    for col, model in enumerate(models):
        part = table[table["model"].eq(model)]
        lams = sorted(set(part["l2"]))
        for row, (metric, label) in enumerate([("test_accuracy", "test accuracy"),
                                               ("regularized_norm", "‖w‖ of regularized tensors")]):
            ax = axes[row][col]
            for i, (framework, _) in enumerate(sides):
                side = part[part["framework"].eq(framework)].set_index("l2").reindex(lams)
                # small offsets, centred on each λ: error bars don't overlap
                x = np.arange(len(lams)) + (i - (len(sides) - 1) / 2) * 0.08
                ax.errorbar(x, side[f"{metric}_mean"], yerr=side[f"{metric}_std"], marker="o", capsize=3,
                            label=side_label(framework))
            ax.set_xticks(range(len(lams)), [lam(v) for v in lams])
            ax.set(xlabel="λ", ylabel=label, title=f"{model}: {label}")
            if metric == "regularized_norm":
                ax.set_yscale("log")
                # labelled ticks at 1, 1.5, 2, 3, 5, 7 per decade, written "6", not "6×10⁰"
                ax.yaxis.set_major_locator(LogLocator(subs=(1, 1.5, 2, 3, 5, 7)))
                ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
                ax.yaxis.set_minor_formatter(NullFormatter())
            ax.grid(alpha=0.3)
            ax.legend()
    fig.suptitle("λ sweep (Adam): mean ± std over seeds")
    with atomic_path(path) as tmp:  # never half a PNG under the real name
        fig.savefig(tmp, dpi=DPI)
    return True


def plot_recipes(table: pd.DataFrame, path: Path) -> bool:
    """One row per model × optimizer: norm ratio to Keras (left) and Δ accuracy (right) per Keras
    backend and torch recipe, horizontal bars with 95% CI error bars and the 'same as Keras' line (1, 0)."""
    torch = table[table["framework"].ne(REFERENCE_COLUMN)]
    panels = list(dict.fromkeys(zip(torch["model"], torch["optimizer"])))
    if not panels:
        return False
    fig = Figure(figsize=(12, 1.0 + 2.4 * len(panels)), layout="constrained")
    axes = fig.subplots(len(panels), 2, squeeze=False)
    for (model, optimizer), (left, right) in zip(panels, axes):
        part = torch[torch["model"].eq(model) & torch["optimizer"].eq(optimizer)]
        _bars(left, part, "norm_ratio", 1.0, f"{model}, {optimizer}: ‖w‖ reg, run / Keras", "{:.2f}")
        _bars(right, part, "delta_accuracy", 0.0, f"{model}, {optimizer}: test acc, run − Keras", "{:+.3f}")
    axes[-1][0].set_xlabel("norm ratio (1 = same as Keras)")
    axes[-1][1].set_xlabel("Δ test accuracy (0 = same as Keras)")
    fig.suptitle("Keras backends and torch recipes against Keras l2 on TensorFlow (λ = 0.01), paired by seed; "
                 "bars = mean, whiskers = 95% CI")
    with atomic_path(path) as tmp:  # never half a PNG under the real name
        fig.savefig(tmp, dpi=DPI)
    return True


def _bars(ax, part: pd.DataFrame, metric: str, reference: float, title: str, fmt: str) -> None:
    mean = part[f"{metric}_mean"].to_numpy(float)
    low, high = part[f"{metric}_ci95_low"].to_numpy(float), part[f"{metric}_ci95_high"].to_numpy(float)
    err = np.nan_to_num(np.vstack([mean - low, high - mean]))  # no interval (n < 2): no whisker
    y = np.arange(len(part))
    ax.barh(y, mean - reference, left=reference, xerr=err, capsize=3, color="tab:blue", alpha=0.75)
    ax.axvline(reference, color="black", linewidth=1)
    _xlim_around(ax, np.concatenate([mean, low, high, [reference]]))
    for yi, m in zip(y, mean):
        if not np.isnan(m):
            ax.annotate(fmt.format(m), (m, yi), xytext=(4 if m >= reference else -4, 6),
                        textcoords="offset points", ha="left" if m >= reference else "right", fontsize=8)
    labels = [f"{column_label(fw)} {reg}" for fw, reg in zip(part["framework"], part["regularization"])]
    ax.set_yticks(y, labels, fontsize=10)
    ax.invert_yaxis()  # recipes top to bottom in table order
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)


def _xlim_around(ax, values: np.ndarray) -> None:
    """Pad the x range so the reference line and whiskers never sit on the frame."""
    values = values[np.isfinite(values)]
    if not values.size:
        return
    lo, hi = values.min(), values.max()
    pad = 0.08 * (hi - lo) if hi > lo else 0.05 * max(abs(hi), 1e-3)
    ax.set_xlim(lo - pad, hi + pad)
