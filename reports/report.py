"""Tables (CSV + Markdown), plots (PNG) and an index, built from run and parity records only.

Every number written here is computed from the records passed in; nothing is typed by hand.
Plain pandas/matplotlib: this module never imports a framework, so the CLI's parent process
can build reports. Entry points: ``runs_frame``, ``epochs_frame``, ``write_reports``, ``headline``.
The parity tables and the float32 study live in ``parity_report.py``; this module writes them.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure  # no pyplot: no global backend state, safe in any process
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from engine.experiments import ARTICLE_LAMBDA
from parity.runner import CLOSE, CLOSE_STEP, EXACT_FLOAT64, SLACK
from parity.grid import COLUMNS as PARITY_COLUMNS
from reports.parity import (OLD_BOUND, float32_markdown, float32_table, parity_frame, parity_markdown,
                                       plot_float32_case)
from core.records import REGULARIZED
from core.spec import FRAMEWORKS, KERAS_CONFIGS, MODELS, TORCH_RECIPES, RunSpec
from reports.stats import aggregate, fmt_mean_std
from reports.tables import DPI
from reports.tables import distinct as _distinct
from reports.tables import markdown as _markdown

__all__ = ["runs_frame", "epochs_frame", "write_reports", "headline"]

ID_COLUMNS = ["key", "model", "framework", "regularization", "l2", "optimizer", "mode", "dataset",
              "epochs", "seed", "dtype", "status"]
# A run's metrics; NaN for a diverged run (its last numbers describe a broken model).
METRICS = ["test_accuracy", "train_accuracy", "loss", "regularized_sq", "regularized_norm"]
TIMING = ["wall_time_s", "steps_per_s"]
# The two sides of the article and sweep tables: what the article wrote, and its exact port.
SIDES = (("keras", "l2"), ("torch", "penalty"))
SIDE_LABEL = {"keras": "Keras l2", "torch": "torch penalty"}
# Runs of the same configuration and seed are paired across frameworks on these columns.
PAIR_ON = ["model", "l2", "optimizer", "mode", "dataset", "epochs", "dtype", "seed"]
ORDER = {"model": MODELS, "framework": FRAMEWORKS, "regularization": KERAS_CONFIGS + TORCH_RECIPES,
         "optimizer": ("sgd", "momentum", "adam", "adamw"), "column": PARITY_COLUMNS}


# ---------------------------------------------------------------- frames


def runs_frame(records: list[dict]) -> pd.DataFrame:
    """One row per run record: id columns, final metrics, one ``norm:<tensor>`` per tensor, timing."""
    rows = [{**_ids(r), **_metrics(r), **_timing(r)} for r in records]
    df = pd.DataFrame(rows)
    norms = _norm_columns(df.columns)
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


def _norm_columns(columns) -> list[str]:
    """norm:<layer>/<kind>, layers alphabetically (conv1, conv2, hidden, out), kernel before bias."""
    names = [c for c in columns if c.startswith("norm:")]
    return sorted(names, key=lambda c: (c[5:].split("/")[0], "kernel" not in c, c))


def _ordered(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Sort by the project's canonical orders (models, frameworks, recipes), numbers ascending."""
    def key(s: pd.Series):
        if s.name in ORDER:
            return s.map({v: i for i, v in enumerate(ORDER[s.name])}).fillna(len(ORDER[s.name]))
        return s
    return df.sort_values(by, key=key, kind="stable").reset_index(drop=True)


def _aggregate(df: pd.DataFrame, by: list[str], columns: list[str]) -> pd.DataFrame:
    """stats.aggregate plus ``diverged``: how many runs of the group diverged (they are NaN above)."""
    out = aggregate(df, by, columns)
    counts = df.assign(diverged=df["status"].eq("diverged").astype(int)).groupby(
        by, sort=False, dropna=False)["diverged"].sum().reset_index()
    return out.merge(counts, on=by, how="left")


def _drop_unused_diverged(df: pd.DataFrame) -> pd.DataFrame:
    """Tables show diverged counts only when some run diverged."""
    cols = [c for c in df.columns if c == "diverged" or c.endswith("_diverged")]
    # nansum: a side missing from an outer merge has NaN counts
    return df if np.nansum(df[cols].to_numpy(float)) > 0 else df.drop(columns=cols)


def _of(df: pd.DataFrame, experiments: dict[str, set[str]], name: str) -> pd.DataFrame:
    return df[df["key"].isin(experiments.get(name, set()))]


def _sides(df: pd.DataFrame) -> pd.DataFrame:
    mask = False
    for framework, regularization in SIDES:
        mask = mask | (df["framework"].eq(framework) & df["regularization"].eq(regularization))
    return df[mask]


# ---------------------------------------------------------------- text helpers


def _lam(l2: float) -> str:
    return "none" if l2 == 0 else f"{l2:g}"


def _ms(row, column: str, digits: int = 3) -> str:
    return fmt_mean_std(row.get(f"{column}_mean"), row.get(f"{column}_std"), digits)


def _ci(row, column: str, signed: bool, digits: int = 3) -> str:
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
    """Rows model × λ; per side (keras_/torch_ prefixes) mean, std, CI, n of each metric."""
    df = _sides(df)
    norms = [c for c in _norm_columns(df.columns) if df[c].notna().any()]
    agg = _aggregate(df, ["model", "l2", "framework", "regularization"],
                     ["test_accuracy", "train_accuracy", "regularized_norm"] + norms)
    return _drop_unused_diverged(_side_by_side(agg, ["model", "l2"]))


def _side_by_side(agg: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    wide = None
    for framework, regularization in SIDES:
        part = agg[agg["framework"].eq(framework) & agg["regularization"].eq(regularization)]
        part = part.drop(columns=["framework", "regularization"])
        part = part.rename(columns={c: f"{framework}_{c}" for c in part.columns if c not in keys})
        wide = part if wide is None else wide.merge(part, on=keys, how="outer")
    return _ordered(wide, keys)


def article_markdown(table: pd.DataFrame) -> str:
    summary = _side_table(table, [("test acc", "test_accuracy"), ("train acc", "train_accuracy"),
                                  ("‖w‖ reg", "regularized_norm")])
    return (f"{_markdown(summary)}\n\n### Per-tensor L2 norms (mean ± std over seeds)\n\n"
            f"{_markdown(_tensor_table(table))}\n")


def _side_table(table: pd.DataFrame, metrics: list[tuple[str, str]]) -> pd.DataFrame:
    """Readable side-by-side rows: model, λ, then each metric for Keras l2 and torch penalty."""
    rows = []
    for _, r in table.iterrows():
        row = {"model": r["model"], "λ": _lam(r["l2"])}
        for label, metric in metrics:
            for framework, _ in SIDES:
                row[f"{label} ({SIDE_LABEL[framework]})"] = _ms(r, f"{framework}_{metric}")
        row["n"] = _n_text(*(r.get(f"{fw}_{metrics[0][1]}_n") for fw, _ in SIDES))
        if "keras_diverged" in r:
            row["diverged (Keras / torch)"] = " / ".join(
                "0" if pd.isna(r.get(f"{fw}_diverged")) else str(int(r[f"{fw}_diverged"])) for fw, _ in SIDES)
        rows.append(row)
    return pd.DataFrame(rows)


def _tensor_table(table: pd.DataFrame) -> pd.DataFrame:
    """Rows model × λ × tensor (only tensors the model has), Keras and torch side by side."""
    tensors = [c[len("keras_"):-len("_mean")] for c in table.columns
               if c.startswith("keras_norm:") and c.endswith("_mean")]
    rows = []
    for _, r in table.iterrows():
        for t in tensors:
            if pd.isna(r[f"keras_{t}_mean"]) and pd.isna(r.get(f"torch_{t}_mean")):
                continue
            rows.append({"model": r["model"], "λ": _lam(r["l2"]), "tensor": t[len("norm:"):],
                         **{SIDE_LABEL[fw]: _ms(r, f"{fw}_{t}") for fw, _ in SIDES}})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- recipes


def recipes_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per model × optimizer: Keras l2 (reference) then each torch recipe, with per-seed paired
    Δ accuracy (torch − Keras) and norm ratio (torch / Keras), each summarized with its 95% CI."""
    keras = df[df["framework"].eq("keras") & df["regularization"].eq("l2")]
    paired = _paired(df[df["framework"].eq("torch")], keras)
    by = ["model", "optimizer", "framework", "regularization"]
    out = pd.concat([_aggregate(keras, by, ["test_accuracy", "regularized_norm"]),
                     _aggregate(paired, by, ["test_accuracy", "regularized_norm", "delta_accuracy", "norm_ratio"])],
                    ignore_index=True)
    return _drop_unused_diverged(_ordered(out, by))


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
        parts.append(f"### {model}, {optimizer}\n\n{_markdown(pd.DataFrame(rows))}\n")
    return "\n".join(parts)


def _recipe_row(r) -> dict:
    keras = r["framework"] == "keras"
    row = {"run": "Keras l2 (reference)" if keras else f"torch {r['regularization']}",
           "test acc": _ms(r, "test_accuracy"), "‖w‖ reg": _ms(r, "regularized_norm"),
           "Δ acc vs Keras [95% CI]": "" if keras else _ci(r, "delta_accuracy", signed=True),
           "norm ratio vs Keras [95% CI]": "" if keras else _ci(r, "norm_ratio", signed=False),
           "n": _n_text(r["test_accuracy_n"])}
    if "diverged" in r:
        row["diverged"] = _n_text(r["diverged"])
    return row


# ---------------------------------------------------------------- sweep


def sweep_table(df: pd.DataFrame) -> pd.DataFrame:
    """Rows model × λ × framework: test accuracy and regularized norm, mean, std, CI, n."""
    by = ["model", "l2", "framework", "regularization"]
    out = _aggregate(_sides(df), by, ["test_accuracy", "regularized_norm"])
    return _drop_unused_diverged(_ordered(out, by))


def sweep_markdown(table: pd.DataFrame) -> str:
    wide = _side_by_side(table, ["model", "l2"])
    return _markdown(_side_table(wide, [("test acc", "test_accuracy"), ("‖w‖ reg", "regularized_norm")])) + "\n"


# ---------------------------------------------------------------- plots


def plot_norm_vs_epoch(epochs: pd.DataFrame, path: Path) -> bool:
    """Article runs at λ = ARTICLE_LAMBDA: regularized norm per epoch, mean ± std band over seeds."""
    data = _sides(epochs[epochs["l2"].eq(ARTICLE_LAMBDA)])
    models = [m for m in MODELS if m in set(data["model"])]
    if not models:
        return False
    fig = Figure(figsize=(4.2 * len(models), 3.8), layout="constrained")
    for ax, model in zip(fig.subplots(1, len(models), squeeze=False)[0], models):
        for framework, regularization in SIDES:
            side = data[data["model"].eq(model) & data["framework"].eq(framework)]
            stats = side.groupby("epoch")["regularized_norm"].agg(["mean", "std"]).fillna({"std": 0.0})
            line, = ax.plot(stats.index, stats["mean"], marker="o", label=SIDE_LABEL[framework])
            ax.fill_between(stats.index, stats["mean"] - stats["std"], stats["mean"] + stats["std"],
                            color=line.get_color(), alpha=0.2)
        ax.set(title=model, xlabel="epoch", ylabel="‖w‖ of regularized tensors")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"Regularized weight norm during training, λ = {ARTICLE_LAMBDA:g} (mean ± std over seeds)")
    fig.savefig(path, dpi=DPI)
    return True


def plot_sweep(table: pd.DataFrame, path: Path) -> bool:
    """2 × models grid: test accuracy and regularized norm (log) against λ, categorical x axis
    so λ = 0 sits beside the others at even spacing; error bars are ± std over seeds."""
    models = [m for m in MODELS if m in set(table["model"])]
    if not models:
        return False
    fig = Figure(figsize=(5.0 * len(models), 7.0), layout="constrained")
    axes = fig.subplots(2, len(models), squeeze=False)
    for col, model in enumerate(models):
        part = table[table["model"].eq(model)]
        lams = sorted(set(part["l2"]))
        for row, (metric, label) in enumerate([("test_accuracy", "test accuracy"),
                                               ("regularized_norm", "‖w‖ of regularized tensors")]):
            ax = axes[row][col]
            for i, (framework, _) in enumerate(SIDES):
                side = part[part["framework"].eq(framework)].set_index("l2").reindex(lams)
                x = np.arange(len(lams)) + (i - 0.5) * 0.08  # small offset: error bars don't overlap
                ax.errorbar(x, side[f"{metric}_mean"], yerr=side[f"{metric}_std"], marker="o", capsize=3,
                            label=SIDE_LABEL[framework])
            ax.set_xticks(range(len(lams)), [_lam(v) for v in lams])
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
    fig.savefig(path, dpi=DPI)
    return True


def plot_recipes(table: pd.DataFrame, path: Path) -> bool:
    """One row per model × optimizer: norm ratio to Keras (left) and Δ accuracy (right) per torch
    recipe, horizontal bars with 95% CI error bars and the 'same as Keras' line (1, 0)."""
    torch = table[table["framework"].eq("torch")]
    panels = list(dict.fromkeys(zip(torch["model"], torch["optimizer"])))
    if not panels:
        return False
    fig = Figure(figsize=(12, 1.0 + 2.4 * len(panels)), layout="constrained")
    axes = fig.subplots(len(panels), 2, squeeze=False)
    for (model, optimizer), (left, right) in zip(panels, axes):
        part = torch[torch["model"].eq(model) & torch["optimizer"].eq(optimizer)]
        _bars(left, part, "norm_ratio", 1.0, f"{model}, {optimizer}: ‖w‖ reg, torch / Keras", "{:.2f}")
        _bars(right, part, "delta_accuracy", 0.0, f"{model}, {optimizer}: test acc, torch − Keras", "{:+.3f}")
    axes[-1][0].set_xlabel("norm ratio (1 = same as Keras)")
    axes[-1][1].set_xlabel("Δ test accuracy (0 = same as Keras)")
    fig.suptitle("Torch recipes against Keras l2 (λ = 0.01), paired by seed; bars = mean, whiskers = 95% CI")
    fig.savefig(path, dpi=DPI)
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
    ax.set_yticks(y, part["regularization"].tolist(), fontsize=10)
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


# ---------------------------------------------------------------- writing


def write_reports(out_dir: Path, runs: list[dict], parity: list[dict],
                  experiments: dict[str, set[str]]) -> list[Path]:
    """Write every part whose inputs are non-empty, then README.md indexing them; return the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    df = runs_frame(runs)
    epochs = epochs_frame(runs)
    index: list[tuple[Path, str]] = []
    index += _write_article(out_dir, _of(df, experiments, "article"), _of(epochs, experiments, "article"))
    index += _write_recipes(out_dir, _of(df, experiments, "recipes"))
    index += _write_sweep(out_dir, _of(df, experiments, "sweep"))
    index += _write_parity(out_dir, parity)
    index += _write_float32(out_dir, parity)
    index += _write_porting(out_dir, runs, parity)
    if (out_dir / "bench.md").exists():  # written by `l2compare bench`, indexed here too
        index.append((out_dir / "bench.md", "speed of the suite's training loops against minimal ones, "
                      "the cost of each L2 recipe, and the wall time of each experiment (`make bench`)"))
    if (out_dir / "gpu_determinism.json").exists():  # written by scripts/gpu_determinism.py on a GPU machine
        index.append((out_dir / "gpu_determinism.json", "is a torch run bit-reproducible on a GPU? two runs per "
                      "model, with and without determinism enabled (scripts/gpu_determinism.py)"))
    readme = out_dir / "README.md"
    readme.write_text(_readme(index, df, runs, parity, experiments))
    return [p for p, _ in index] + [readme]


def _write_porting(out_dir: Path, runs: list[dict], parity: list[dict]) -> list[tuple[Path, str]]:
    from reports import porting_guide as porting_md

    path = porting_md.write(out_dir, runs, parity)
    return [(path, "the porting reference: for each Keras configuration, the exact PyTorch code, the measured "
             "agreement, and what each common mistake costs — generated from the records")] if path else []


def _write_article(out_dir: Path, df: pd.DataFrame, epochs: pd.DataFrame) -> list[tuple[Path, str]]:
    table = article_table(df) if len(_sides(df)) else None
    if table is None or table.empty:
        return []
    out = _write_table(out_dir, "article", table, article_markdown(table),
                       "The article: per model × λ (none = no regularizer), Keras l2 beside torch penalty, Adam: "
                       "test/train accuracy, regularized norm and per-tensor norms")
    if plot_norm_vs_epoch(epochs, out_dir / "norm_vs_epoch.png"):
        out.append((out_dir / "norm_vs_epoch.png",
                    f"Regularized norm per epoch at λ = {ARTICLE_LAMBDA:g}, Keras l2 vs torch penalty; "
                    "line = mean, band = ± std over seeds; each framework starts from its own initializers (Keras's first kernel is larger), so the curves start apart and converge as L2 pulls the weights in"))
    return out


def _write_recipes(out_dir: Path, df: pd.DataFrame) -> list[tuple[Path, str]]:
    if df.empty:
        return []
    table = recipes_table(df)
    out = _write_table(out_dir, "recipes", table, recipes_markdown(table),
                       "Every torch recipe against Keras l2 per model × optimizer: accuracy, regularized norm, "
                       "and the seed-paired Δ accuracy and norm ratio to Keras with 95% CI")
    if plot_recipes(table, out_dir / "recipes.png"):
        out.append((out_dir / "recipes.png",
                    "Norm ratio (left; 1 = lands where Keras does) and Δ test accuracy (right; 0 = same) per "
                    "recipe; whiskers = 95% CI of the per-seed paired values"))
    return out


def _write_sweep(out_dir: Path, df: pd.DataFrame) -> list[tuple[Path, str]]:
    if _sides(df).empty:
        return []
    table = sweep_table(df)
    out = _write_table(out_dir, "sweep", table, sweep_markdown(table),
                       "λ sweep per model × λ × framework: test accuracy and regularized norm")
    if plot_sweep(table, out_dir / "sweep.png"):
        out.append((out_dir / "sweep.png",
                    "Test accuracy (top) and regularized norm (bottom, log scale) against λ; "
                    "points = mean, error bars = ± std over seeds"))
    return out


def _write_parity(out_dir: Path, parity: list[dict]) -> list[tuple[Path, str]]:
    if not parity:
        return []
    return _write_table(out_dir, "parity", parity_frame(parity), parity_markdown(parity),
                        "Verdict table: Keras config / optimizer (rows) × torch recipe (columns), "
                        "float32 / float64 verdict and the number it follows from (float32: median one-step "
                        "difference of max |w|; float64: trajectory max |Δw|)",
                        csv_note="one row per record (grid, other mistakes, float32 study; `extra`/`study` say "
                                 "which): verdict, score, trajectory worst |Δw| with its tensor and step, loss "
                                 "difference, and for float32 the one-step numbers, ties, outliers by explanation "
                                 "and the 1-ulp envelope",
                        md_note="readable pivot with a legend of the verdicts and the setup, and every float32 "
                                "cell in detail: one-step result, trajectory and 1-ulp envelope")


def _write_float32(out_dir: Path, parity: list[dict]) -> list[tuple[Path, str]]:
    table = float32_table(parity)
    out = [] if table.empty else _write_table(
        out_dir, "float32", table, float32_markdown(table, parity),
        "float32 agreement study: the exact recipe (torch penalty vs Keras l2) over seeds × data sets × models × "
        "optimizers, one row per data set / model / optimizer",
        csv_note=f"seeds, trajectories within the retired fixed bound {OLD_BOUND:g}, one-step medians and maximum, "
                 "rounding floor, share of steps with a decision tie, outlier steps by explanation, verdict counts",
        md_note="readable, with the study's summary")
    if plot_float32_case(parity, out_dir / "float32_cnn.png"):
        out.append((out_dir / "float32_cnn.png",
                    "One float32 CNN case step by step: top, the Keras-vs-torch trajectory against torch's own 1-ulp "
                    "envelope (log); bottom, the one-step difference against the frameworks' rounding floor, decision "
                    "ties marked in red"))
    return out


TITLES = {"article": "The article's models: Keras l2 vs torch penalty",
          "recipes": "Torch recipes against Keras l2",
          "sweep": "λ sweep: Keras l2 vs torch penalty",
          "parity": "Parity: which torch recipe is the same computation as which Keras configuration",
          "float32": "float32 agreement: the exact recipe over seeds, data sets, models and optimizers"}


def _write_table(out_dir: Path, name: str, table: pd.DataFrame, markdown: str, what: str,
                 csv_note: str = "all numbers: mean, std, 95% CI bounds and n per metric",
                 md_note: str = "readable: mean ± std over seeds") -> list[tuple[Path, str]]:
    csv, md = out_dir / f"{name}.csv", out_dir / f"{name}.md"
    _counts_as_int(table).to_csv(csv, index=False)
    md.write_text(f"# {TITLES[name]}\n\n<!-- generated by reports/report.py from the records -->\n\n{markdown}")
    return [(csv, f"{what}; {csv_note}"), (md, f"{what}; {md_note}")]


def _counts_as_int(table: pd.DataFrame) -> pd.DataFrame:
    """Counts stay whole numbers in the CSV (a merge with a missing side makes them float)."""
    counts = [c for c in table.columns if c.endswith("_n") or c.endswith("diverged")]
    return table.astype({c: "Int64" for c in counts})


def _readme(index: list[tuple[Path, str]], df: pd.DataFrame, runs: list[dict], parity: list[dict],
            experiments: dict[str, set[str]]) -> str:
    files = "\n".join(f"- [`{p.name}`]({p.name}): {what}." for p, what in index)
    used = df["key"].isin(set().union(*experiments.values())) if experiments else df["key"].isna()
    return f"""# Results

<!-- generated by reports/report.py; every number in these files comes from the records -->

{_provenance(df, runs, parity)}

## Files

{files}

## Records

- `runs.jsonl`: one record per training run ({len(runs)} records, {int(used.sum())} used by the tables above):
  full spec, status, per-epoch history, per-tensor norms, accuracies, timings, versions, commit.
- `parity.jsonl`: one record per parity cell and dtype ({len(parity)} records: {_parity_counts(parity)}).

## How to read the tables

- **mean ± std**: over seeds (sample std, ddof = 1); `n` = runs with a finite value
  (written "Keras / torch" where the two sides differ).
  Diverged runs are kept, counted in a `diverged` column (shown only when some diverged), and excluded from means.
- **95% CI**: Student-t interval of the mean, mean ± t(0.975, n−1)·std/√n; none with n < 2
  (with few seeds it is wide by design).
- **‖w‖ reg**: √Σw² over the tensors the article's Keras model regularizes
  ({"; ".join(f"{m}: {', '.join(t)}" for m, t in REGULARIZED.items())}), for every run, whatever its λ or recipe.
- **Δ acc**: torch − Keras test accuracy, **norm ratio**: torch / Keras ‖w‖ reg, each computed per seed
  (same model, optimizer, λ and seed) and then averaged; the CI is over those per-seed values.
  Δ = 0 and ratio = 1 mean the port lands where Keras does.
- **Parity verdicts**, from identical initial weights and batches (details in `parity.md`).
  float64, the trajectory: max |Δw| over all steps and tensors; **exact** ≤ {EXACT_FLOAT64:g},
  **close** ≤ {CLOSE:g}, **wrong** above. float32, one step at a time: before each step torch is given Keras's
  weights and optimizer state and takes one step on the same batch; **exact** when at every step and in every
  tensor the difference (of max |w|) is within the two frameworks' own float32 rounding of that step + {SLACK:g},
  which holds on every machine for the same computation; else **close** when the median step differs by
  ≤ {CLOSE_STEP:g} of max |w|, **wrong** above. The number beside a verdict is the one it follows from.
"""


def _parity_counts(parity: list[dict]) -> str:
    study = sum(bool(p.get("study")) for p in parity)
    extra = sum(bool(p.get("extra")) and not p.get("study") for p in parity)
    return f"{len(parity) - study - extra} grid, {extra} other mistakes, {study} float32 study"


def _provenance(df: pd.DataFrame, runs: list[dict], parity: list[dict]) -> str:
    records = runs + parity
    versions: dict[str, list[str]] = {}
    for r in records:
        for package, version in (r.get("versions") or {}).items():
            versions.setdefault(package, [])
            if version not in versions[package]:
                versions[package].append(version)
    listed = "; ".join(f"{k} {', '.join(v)}" for k, v in sorted(versions.items())) or "—"
    return (f"Generated from {len(runs)} run records (seeds {_distinct(sorted(set(df['seed'])))}; "
            f"epochs {_distinct(sorted(set(df['epochs'])))}; data set {_distinct(df['dataset'])}) "
            f"and {len(parity)} parity records. Versions: {listed}. "
            f"Commit: {_distinct(r.get('commit') for r in records)}. {_machine(records)}")


MACHINE_COLUMNS = ["arch", "cpu", "cores", "torch_cpu_capability", "torch_threads", "torch_interop_threads",
                   "tf_intra_op_threads", "tf_inter_op_threads"]


def _machine(records: list[dict]) -> str:
    """Which machine made the numbers: CPU, the ISA level torch dispatched, ISA caps, thread counts.

    From each record's ``machine`` (``core.machine``); records older than that carry only the
    architecture as a string, or nothing, and are described as far as they go.
    """
    rows, caps, env_threads = [], {}, {}
    for r in records:
        m = r.get("machine")
        m = {"arch": m} if isinstance(m, str) else m if isinstance(m, dict) else {}
        rows.append(m)
        for name, value in (m.get("isa_caps") or {}).items():
            caps.setdefault(f"{name}={value}", None)
        for name, value in (m.get("threads") or {}).items():
            env_threads.setdefault(f"{name}={value}", None)
    df = pd.DataFrame(rows).reindex(columns=MACHINE_COLUMNS)

    def distinct(column: str) -> str:
        values = df[column].dropna()
        return _distinct(values.astype(int) if column not in ("arch", "cpu", "torch_cpu_capability") else values)

    if df["cpu"].isna().all():
        arch = distinct("arch")
        return f"Machine: {arch if arch != '—' else 'not recorded'} (CPU model and dispatch not recorded)."
    cores = distinct("cores")
    parts = [f"Machine: {distinct('cpu')} ({cores} {'core' if cores == '1' else 'cores'}, {distinct('arch')})"]
    if df["torch_cpu_capability"].notna().any():
        parts.append(f"torch dispatched {distinct('torch_cpu_capability')} kernels (ATen CPU capability)")
    parts.append(f"ISA caps set: {', '.join(caps) or 'none'}")
    threads = []
    if df["torch_threads"].notna().any():
        threads.append(f"torch {distinct('torch_threads')} (inter-op {distinct('torch_interop_threads')})")
    if df["tf_intra_op_threads"].notna().any():  # 0: TensorFlow's default, one per core
        threads.append(f"TensorFlow intra-op {distinct('tf_intra_op_threads')} / "
                       f"inter-op {distinct('tf_inter_op_threads')}")
    threads += env_threads
    parts.append(f"threads: {', '.join(threads) or 'not recorded'}")
    return "; ".join(parts) + "."


def headline(out_dir: Path, link_prefix: str | None = None) -> str:
    """The mlp rows of the article table and a link to norm_vs_epoch.png, for the project README.

    Read back from ``article.csv``, so it shows exactly what ``write_reports`` wrote. Links are
    relative to the README that embeds it: ``<out_dir name>/`` unless ``link_prefix`` says otherwise.
    """
    out_dir = Path(out_dir)
    table = pd.read_csv(out_dir / "article.csv")
    mlp = table[table["model"].eq("mlp")]
    prefix = f"{out_dir.name}/" if link_prefix is None else link_prefix
    summary = _side_table(mlp, [("test acc", "test_accuracy"), ("train acc", "train_accuracy"),
                                ("‖w‖ reg", "regularized_norm")])
    return (f"{_markdown(summary)}\n\nmean ± std over seeds; full tables in [{prefix}article.md]({prefix}article.md).\n\n"
            f"![Regularized norm per epoch]({prefix}norm_vs_epoch.png)\n")


def compare_table(df: pd.DataFrame) -> str:
    """`l2compare compare`: one row per framework / regularization, mean ± std over seeds."""
    metrics = ["test_accuracy", "train_accuracy", "regularized_norm", "loss"]
    agg = _aggregate(df, ["framework", "regularization"], metrics)
    rows = [{"framework": r["framework"], "regularization": r["regularization"],
             **{m: _ms(r, m) for m in metrics}, "n": int(r["test_accuracy_n"])} for _, r in agg.iterrows()]
    return _markdown(pd.DataFrame(rows))
