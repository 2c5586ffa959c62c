"""Every report file under results/, and results/README.md indexing them; the project README's headline.

``write_reports`` writes each part whose inputs are non-empty (run tables and plots, parity, the
float32 study, PORTING.md), then the index, which says what each file holds and how to read it.
Every number comes from the records passed in; nothing is typed by hand. Imports no framework,
so the CLI's parent process can build reports.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from l2compare.core.names import REGULARIZED
from l2compare.engine.experiments import ARTICLE_LAMBDA
from l2compare.engine.files import atomic_path, write_atomic
from l2compare.core.verdicts import CLOSE, EXACT_FLOAT64
from l2compare.parity.runner import CLOSE_STEP, SLACK
from l2compare.reports.porting import guide as porting_guide
from l2compare.reports import verify_report
from l2compare.reports.float32_study import OLD_BOUND, float32_markdown, float32_table, plot_float32_case
from l2compare.reports.frames import epochs_frame, of_experiment, on_sides, runs_frame
from l2compare.reports.parity_tables import parity_frame, parity_markdown, split_by_backend
from l2compare.reports.plots import plot_norm_vs_epoch, plot_recipes, plot_sweep
from l2compare.reports.provenance import provenance
from l2compare.reports.tables import (article_markdown, article_table, recipes_markdown, recipes_table, side_table,
    sweep_markdown, sweep_table)
from l2compare.reports.tables import markdown as _markdown

__all__ = ["write_reports", "headline"]


def write_reports(out_dir: Path, runs: list[dict], parity: list[dict],
                  experiments: dict[str, set[str]], showcase: list[dict] = ()) -> list[Path]:
    """Write every part whose inputs are non-empty, then README.md indexing them; return the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    df = runs_frame(runs)
    epochs = epochs_frame(runs)
    index: list[tuple[Path, str]] = []
    index += _write_article(out_dir, of_experiment(df, experiments, "article"),
                            of_experiment(epochs, experiments, "article"))
    index += _write_recipes(out_dir, of_experiment(df, experiments, "recipes"))
    index += _write_sweep(out_dir, of_experiment(df, experiments, "sweep"))
    index += _write_sweep(out_dir, of_experiment(df, experiments, "sweep_large"), "sweep_large")
    reference, backends = split_by_backend(parity)   # the float32 study and PORTING.md's proofs: TensorFlow's
    index += _write_parity(out_dir, parity)
    index += _write_float32(out_dir, reference)
    index += _write_verify(out_dir, list(showcase))
    index += _write_porting(out_dir, runs, reference, list(showcase), backends)
    if (out_dir / "bench.md").exists():  # written by `l2compare bench`, indexed here too
        index.append((out_dir / "bench.md", "speed of the suite's training loops against minimal ones, "
                      "the cost of each L2 recipe, and the wall time of each experiment (`make bench`)"))
    if (out_dir / "gpu_determinism.json").exists():  # written by scripts/gpu_determinism.py on a GPU machine
        index.append((out_dir / "gpu_determinism.json", "is a run bit-reproducible on a GPU? two runs per column "
                      "and model, with and without determinism enabled (scripts/gpu_determinism.py; the record "
                      "says which columns it covered)"))
    readme = out_dir / "README.md"
    write_atomic(readme, _readme(index, df, runs, parity, experiments))
    return [p for p, _ in index] + [readme]


def _write_verify(out_dir: Path, showcase: list[dict]) -> list[tuple[Path, str]]:
    if not showcase:
        return []
    path, timing = out_dir / "verify.md", out_dir / "verify_timing.json"
    timings = json.loads(timing.read_text()) if timing.exists() else []
    write_atomic(path, verify_report.showcase_markdown(showcase, timings))
    return [(path, "`l2compare verify` on one corpus model per layer family (BatchNorm, depthwise, Conv1D, transposed "
             "conv, LayerNorm, LSTM, GRU, L1/activity): every recipe's verdict in float64 and float32")]


def _write_porting(out_dir: Path, runs: list[dict], parity: list[dict], showcase: list[dict],
                   backends: dict[str, list[dict]]) -> list[tuple[Path, str]]:
    path = porting_guide.write(out_dir, runs, parity, showcase, backends)
    return [(path, "the porting reference: for each Keras configuration, the exact PyTorch code, the measured "
             "agreement, and what each common mistake costs — generated from the records")] if path else []


def _write_article(out_dir: Path, df: pd.DataFrame, epochs: pd.DataFrame) -> list[tuple[Path, str]]:
    table = article_table(df) if len(on_sides(df)) else None
    if table is None or table.empty:
        return []
    out = _write_table(out_dir, "article", table, article_markdown(table),
                       "The article: per model × λ (none = no regularizer), Keras l2 on each backend beside torch penalty, Adam: "
                       "test/train accuracy, regularized norm and per-tensor norms")
    if plot_norm_vs_epoch(epochs, out_dir / "norm_vs_epoch.png"):
        out.append((out_dir / "norm_vs_epoch.png",
                    f"Regularized norm per epoch at λ = {ARTICLE_LAMBDA:g}, Keras l2 on each backend vs torch penalty; "
                    "line = mean, band = ± std over seeds; each framework starts from its own initializers (Keras's first kernel is larger), so the curves start apart and converge as L2 pulls the weights in"))
    return out


def _write_recipes(out_dir: Path, df: pd.DataFrame) -> list[tuple[Path, str]]:
    if df.empty:
        return []
    table = recipes_table(df)
    out = _write_table(out_dir, "recipes", table, recipes_markdown(table),
                       "Keras l2 on JAX and on torch, and every torch recipe, against Keras l2 on TensorFlow per model × "
                       "optimizer: accuracy, regularized norm, and the seed-paired Δ accuracy and norm ratio with 95% CI")
    if plot_recipes(table, out_dir / "recipes.png"):
        out.append((out_dir / "recipes.png",
                    "Norm ratio (left; 1 = lands where Keras does) and Δ test accuracy (right; 0 = same) per "
                    "Keras backend and torch recipe; whiskers = 95% CI of the per-seed paired values"))
    return out


def _write_sweep(out_dir: Path, df: pd.DataFrame, name: str = "sweep") -> list[tuple[Path, str]]:
    if on_sides(df).empty:
        return []
    table = sweep_table(df)
    out = _write_table(out_dir, name, table, sweep_markdown(table),
                       "λ sweep per model × λ × framework: test accuracy and regularized norm")
    if plot_sweep(table, out_dir / f"{name}.png"):
        out.append((out_dir / f"{name}.png",
                    "Test accuracy (top) and regularized norm (bottom, log scale) against λ; "
                    "points = mean, error bars = ± std over seeds"))
    return out


def _write_parity(out_dir: Path, parity: list[dict]) -> list[tuple[Path, str]]:
    if not parity:
        return []
    return _write_table(out_dir, "parity", parity_frame(parity), parity_markdown(parity),
                        "Verdict table: Keras config / optimizer (rows) × torch recipe (columns), once with Keras on "
                        "TensorFlow and once per other Keras backend (JAX, torch), float32 / float64 verdict and the number it follows from (float32: median one-step "
                        "difference of max |w|; float64: trajectory max |Δw|)",
                        csv_note="one row per record (grid, other mistakes, float32 study; `keras_column`, `extra` "
                                 "and `study` say which): verdict, score, trajectory worst |Δw| with its tensor and step, loss "
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


TITLES = {"article": "The article's models: Keras l2 on each backend vs torch penalty",
          "recipes": "Keras backends and torch recipes against Keras l2 on TensorFlow",
          "sweep": "λ sweep: Keras l2 on each backend vs torch penalty",
          "sweep_large": "Large λ sweep (sweep_large): Keras l2 on each backend vs torch penalty",
          "parity": "Parity: which torch recipe is the same computation as which Keras configuration",
          "float32": "float32 agreement: the exact recipe over seeds, data sets, models and optimizers"}


def _write_table(out_dir: Path, name: str, table: pd.DataFrame, markdown: str, what: str,
                 csv_note: str = "all numbers: mean, std, 95% CI bounds and n per metric",
                 md_note: str = "readable: mean ± std over seeds") -> list[tuple[Path, str]]:
    csv, md = out_dir / f"{name}.csv", out_dir / f"{name}.md"
    with atomic_path(csv) as tmp:  # each file whole or not at all: l2compare.engine.files
        _counts_as_int(table).to_csv(tmp, index=False)
    write_atomic(md, f"# {TITLES[name]}\n\n<!-- generated by l2compare/reports/index.py from the records -->\n\n{markdown}")
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

<!-- generated by l2compare/reports/index.py; every number in these files comes from the records -->

{provenance(df, runs, parity)}

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
    reference, backends = split_by_backend(parity)
    study = sum(bool(p.get("study")) for p in reference)
    extra = sum(bool(p.get("extra")) and not p.get("study") for p in reference)
    text = f"{len(reference) - study - extra} grid, {extra} other mistakes, {study} float32 study"
    return text + "".join(f", {len(records)} grid with Keras on {name}" for name, records in backends.items())


def headline(out_dir: Path, link_prefix: str | None = None) -> str:
    """The mlp rows of the article table and a link to norm_vs_epoch.png, for the project README.

    Read back from ``article.csv``, so it shows exactly what ``write_reports`` wrote. Links are
    relative to the README that embeds it: ``<out_dir name>/`` unless ``link_prefix`` says otherwise.
    """
    out_dir = Path(out_dir)
    table = pd.read_csv(out_dir / "article.csv")
    mlp = table[table["model"].eq("mlp")]
    prefix = f"{out_dir.name}/" if link_prefix is None else link_prefix
    summary = side_table(mlp, [("test acc", "test_accuracy"), ("train acc", "train_accuracy"),
                               ("‖w‖ reg", "regularized_norm")])
    return (f"{_markdown(summary)}\n\nmean ± std over seeds; full tables in [{prefix}article.md]({prefix}article.md).\n\n"
            f"![Regularized norm per epoch]({prefix}norm_vs_epoch.png)\n")
