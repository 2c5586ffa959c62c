"""Tests for comparisons.report on small synthetic records with numbers checkable by hand."""
from __future__ import annotations

import math
import random
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from comparisons import report
from comparisons.spec import OptimizerSpec, RunSpec

T975_DF1 = math.tan(math.pi * 0.475)  # Student t, 97.5%, 1 degree of freedom (2 seeds)
ADAM, SGD = OptimizerSpec("adam"), OptimizerSpec("sgd", lr=0.01)


def record(model="mlp", framework="keras", regularization="l2", l2=0.01, optimizer=ADAM, seed=0,
           test_accuracy=0.9, accuracy=0.95, reg_sq=4.0, norms=None, status="ok", epochs=2):
    """A run record shaped like the store's, with chosen final numbers; epoch e has Σw² = reg_sq·e/epochs."""
    spec = RunSpec(model=model, framework=framework, regularization=regularization, l2=l2,
                   optimizer=optimizer, epochs=epochs, seed=seed)
    norms = norms or {"hidden/kernel": math.sqrt(reg_sq), "hidden/bias": 0.5, "out/kernel": 3.0, "out/bias": 0.25}
    final = {"loss": 0.3, "data_loss": 0.2, "penalty": 0.1, "accuracy": accuracy, "test_accuracy": test_accuracy}
    history = [{**final, "epoch": e, "test_accuracy": test_accuracy * e / epochs, "norms": norms,
                "regularized_sq": reg_sq * e / epochs} for e in range(1, epochs + 1)]
    if status == "diverged":
        final = {**final, "loss": None}
    return {"key": spec.key, "spec": spec.to_dict(), "seed": seed, "status": status, "history": history,
            "norms": norms, "regularized_sq": reg_sq, "final": final, "wall_time_s": 1.5, "steps_per_s": 20.0,
            "versions": {"numpy": "2.0", framework: "9.9"}, "commit": "abc123", "backend": framework,
            "device": "cpu"}


def parity_record(row, column, dtype, worst, verdict):
    return {"key": f"{row}{column}{dtype}", "row": row, "column": column, "dtype": dtype, "worst": worst,
            "worst_tensor": "out/kernel", "worst_step": 52, "per_tensor": {"out/kernel": worst},
            "loss_diff": worst / 10, "verdict": verdict, "steps": 52,
            "case": {"model": "mlp", "dataset": "article", "n_samples": 100, "batch_size": 32, "seed": 0,
                     "optimizer": {"name": "adam"}, "torch_epsilon": 1e-7},
            "versions": {"keras": "3.0"}, "commit": "abc123"}


def two_seed_article():
    """Keras l2 accuracies 0.9 / 0.8, torch penalty 0.7 / 0.6, at λ = 0.01 and λ = 0."""
    out = []
    for l2 in (0.01, 0.0):
        for seed, acc in ((0, 0.9), (1, 0.8)):
            out.append(record(l2=l2, seed=seed, test_accuracy=acc, reg_sq=4.0 + 5 * seed))
            out.append(record(framework="torch", regularization="penalty", l2=l2, seed=seed,
                              test_accuracy=acc - 0.2, reg_sq=1.0))
    return out


def cells(markdown: str) -> list[list[str]]:
    """The rows of every Markdown table in the text, as stripped cell strings."""
    return [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in markdown.splitlines() if line.startswith("|")]


def keys(records):
    return {r["key"] for r in records}


# ---------------------------------------------------------------- frames


def test_runs_frame_flattens_a_record():
    df = report.runs_frame([record(optimizer=OptimizerSpec("sgd", lr=0.01, momentum=0.9), reg_sq=9.0,
                                   test_accuracy=0.875, accuracy=0.5, seed=3)])
    row = df.iloc[0]
    assert row["optimizer"] == "momentum"
    assert row["regularized_norm"] == 3.0 and row["regularized_sq"] == 9.0
    assert (row["test_accuracy"], row["train_accuracy"], row["seed"]) == (0.875, 0.5, 3)
    assert row["norm:out/bias"] == 0.25
    norms = [c for c in df.columns if c.startswith("norm:")]
    assert norms == ["norm:hidden/kernel", "norm:hidden/bias", "norm:out/kernel", "norm:out/bias"]
    assert list(df.columns[:12]) == report.ID_COLUMNS


def test_runs_frame_diverged_run_kept_with_nan_metrics():
    df = report.runs_frame([record(), record(seed=1, status="diverged")])
    assert len(df) == 2
    bad = df[df["status"] == "diverged"].iloc[0]
    assert math.isnan(bad["test_accuracy"]) and math.isnan(bad["regularized_norm"])
    assert math.isnan(bad["norm:hidden/kernel"])
    assert bad["wall_time_s"] == 1.5  # timing is still a fact about the run


def test_epochs_frame_one_row_per_epoch():
    df = report.epochs_frame([record(epochs=3, reg_sq=9.0), record(seed=1, epochs=3)])
    assert len(df) == 6
    first = df[df["seed"] == 0].sort_values("epoch")
    assert first["epoch"].tolist() == [1, 2, 3]
    assert first["regularized_norm"].tolist() == pytest.approx([math.sqrt(3), math.sqrt(6), 3.0])
    assert first["test_accuracy"].tolist() == pytest.approx([0.3, 0.6, 0.9])


# ---------------------------------------------------------------- tables


def test_article_table_mean_std_ci_over_seeds():
    table = report.article_table(report.runs_frame(two_seed_article()))
    row = table[(table["model"] == "mlp") & (table["l2"] == 0.01)].iloc[0]
    std = math.sqrt(0.005)  # ((0.05)² + (0.05)²) / 1
    assert row["keras_test_accuracy_mean"] == pytest.approx(0.85)
    assert row["keras_test_accuracy_std"] == pytest.approx(0.0707106781186548)
    assert row["keras_test_accuracy_ci95_high"] == pytest.approx(0.85 + T975_DF1 * std / math.sqrt(2))
    assert row["keras_test_accuracy_n"] == 2
    assert row["torch_test_accuracy_mean"] == pytest.approx(0.65)
    assert row["keras_regularized_norm_mean"] == pytest.approx((2 + 3) / 2)
    assert table["l2"].tolist() == [0.0, 0.01]  # baseline first
    assert "keras_diverged" not in table.columns


def test_article_markdown_readable():
    md = report.article_markdown(report.article_table(report.runs_frame(two_seed_article())))
    rows = cells(md)
    assert rows[0][:4] == ["model", "λ", "test acc (Keras l2)", "test acc (torch penalty)"]
    assert rows[2][:4] == ["mlp", "none", "0.850 ± 0.071", "0.650 ± 0.071"]
    assert rows[2][-1] == "2"
    assert ["mlp", "0.01", "hidden/kernel", "2.500 ± 0.707", "1.000 ± 0.000"] in rows


def test_diverged_run_is_counted_not_dropped():
    runs = two_seed_article() + [record(framework="torch", regularization="penalty", seed=2, status="diverged")]
    table = report.article_table(report.runs_frame(runs))
    row = table[table["l2"] == 0.01].iloc[0]
    assert row["torch_diverged"] == 1 and row["keras_diverged"] == 0
    assert row["torch_test_accuracy_n"] == 2  # the NaN is not averaged in
    assert row["torch_test_accuracy_mean"] == pytest.approx(0.65)
    rows = cells(report.article_markdown(table))
    assert rows[0][-2:] == ["n", "diverged (Keras / torch)"]
    assert rows[3][:2] == ["mlp", "0.01"] and rows[3][-2:] == ["2", "0 / 1"]


def test_recipes_pair_by_seed():
    # Keras accuracies 0.9 / 0.7, torch 0.85 / 0.65: per-seed Δ = -0.05 twice (std 0). Pairing across
    # seeds would give +0.15 / -0.25. Norms: Keras 2 / 4, torch 1 / 2: ratio 0.5 twice (std 0).
    runs = [record(optimizer=SGD, seed=0, test_accuracy=0.9, reg_sq=4.0),
            record(optimizer=SGD, seed=1, test_accuracy=0.7, reg_sq=16.0),
            record(framework="torch", regularization="coupled", optimizer=SGD, seed=1, test_accuracy=0.65, reg_sq=4.0),
            record(framework="torch", regularization="coupled", optimizer=SGD, seed=0, test_accuracy=0.85, reg_sq=1.0)]
    random.Random(0).shuffle(runs)
    table = report.recipes_table(report.runs_frame(runs))
    torch = table[table["framework"] == "torch"].iloc[0]
    assert torch["delta_accuracy_mean"] == pytest.approx(-0.05)
    assert torch["delta_accuracy_std"] == pytest.approx(0.0, abs=1e-12)
    assert torch["norm_ratio_mean"] == pytest.approx(0.5)
    assert torch["norm_ratio_std"] == pytest.approx(0.0, abs=1e-12)
    assert torch["delta_accuracy_n"] == 2
    assert table["framework"].tolist() == ["keras", "torch"]  # reference first


def test_recipes_ci_over_paired_differences():
    runs = [record(seed=0, test_accuracy=0.9, reg_sq=4.0), record(seed=1, test_accuracy=0.8, reg_sq=4.0),
            record(framework="torch", regularization="naive_wd", seed=0, test_accuracy=0.9, reg_sq=1.0),
            record(framework="torch", regularization="naive_wd", seed=1, test_accuracy=0.7, reg_sq=9.0)]
    row = report.recipes_table(report.runs_frame(runs)).iloc[1]
    # Δ = 0.0, -0.1: mean -0.05, std √0.005; ratio = 0.5, 1.5: mean 1, std √0.5
    assert row["delta_accuracy_mean"] == pytest.approx(-0.05)
    assert row["delta_accuracy_ci95_low"] == pytest.approx(-0.05 - T975_DF1 * math.sqrt(0.005) / math.sqrt(2))
    assert row["norm_ratio_ci95_high"] == pytest.approx(1 + T975_DF1 * math.sqrt(0.5) / math.sqrt(2))
    md = report.recipes_markdown(report.recipes_table(report.runs_frame(runs)))
    assert md.startswith("### mlp, adam")
    rows = cells(md)
    assert rows[2][:3] == ["Keras l2 (reference)", "0.850 ± 0.071", "2.000 ± 0.000"] and rows[2][3:5] == ["", ""]
    assert rows[3][0] == "torch naive_wd" and rows[3][3].startswith("-0.050 [") and rows[3][4].startswith("1.000 [")


def test_recipes_duplicate_keras_run_is_an_error():
    runs = [record(), record(), record(framework="torch", regularization="penalty")]
    with pytest.raises(pd.errors.MergeError):
        report.recipes_table(report.runs_frame(runs))


def test_sweep_table_per_lambda_and_framework():
    runs = [record(l2=l2, seed=s, test_accuracy=0.5 + s / 10 + l2) for l2 in (0.0, 0.1) for s in (0, 1)]
    runs += [record(framework="torch", regularization="penalty", l2=0.1, seed=s) for s in (0, 1)]
    table = report.sweep_table(report.runs_frame(runs))
    assert table[["l2", "framework"]].values.tolist() == [[0.0, "keras"], [0.1, "keras"], [0.1, "torch"]]
    assert table.iloc[1]["test_accuracy_mean"] == pytest.approx(0.65)
    rows = cells(report.sweep_markdown(table))
    assert rows[2] == ["mlp", "none", "0.550 ± 0.071", "—", "2.000 ± 0.000", "—", "2 / 0"]
    assert rows[3][:4] == ["mlp", "0.1", "0.650 ± 0.071", "0.900 ± 0.000"]


def test_parity_pivot_places_cells():
    parity = [parity_record("l2 / adam", "coupled", "float32", 3e-8, "exact"),
              parity_record("l2 / adam", "coupled", "float64", 2.04e-4, "close"),
              parity_record("wd / sgd", "stock_torch", "float64", 0.5, "wrong"),
              parity_record("l2 / adam", "penalty", "float32", 1e-7, "exact")]
    pivot = report.parity_pivot(report.parity_frame(parity))
    # canonical column order, only the columns that have cells
    assert list(pivot.columns) == ["Keras config / optimizer", "penalty", "coupled", "stock_torch"]
    assert pivot["Keras config / optimizer"].tolist() == ["l2 / adam", "wd / sgd"]
    assert pivot.iloc[0]["coupled"] == "exact 3.0e-08 / close 2.0e-04"
    assert pivot.iloc[0]["penalty"] == "exact 1.0e-07 / —"
    assert pivot.iloc[1]["stock_torch"] == "— / wrong 5.0e-01"
    assert pivot.iloc[1]["coupled"] == "— / —"
    md = report.parity_markdown(parity)
    assert "1e-05 (float32) / 1e-12 (float64)" in md and "52 training steps" in md
    assert "penalty/coupled carry no λ" in md
    assert "ε = — in float32, 1e-07 in float64" in md  # from the stock_torch Adam cell (float64 only here)


# ---------------------------------------------------------------- files


def test_write_reports_writes_and_indexes_everything(tmp_path):
    article = two_seed_article()
    recipes = [record(optimizer=SGD, seed=s, test_accuracy=0.9 - s / 10) for s in (0, 1)]
    recipes += [record(framework="torch", regularization=r, optimizer=SGD, seed=s, test_accuracy=0.8)
                for r in ("penalty", "naive_wd") for s in (0, 1)]
    parity = [parity_record("l2 / sgd", c, d, 1e-8, "exact") for c in ("penalty", "coupled")
              for d in ("float32", "float64")]
    runs = article + recipes
    experiments = {"article": keys(article), "sweep": keys(article), "recipes": keys(recipes)}
    paths = report.write_reports(tmp_path, runs, parity, experiments)
    names = {p.name for p in paths}
    expected = {f"{t}.{e}" for t in ("article", "recipes", "sweep", "parity") for e in ("csv", "md")}
    expected |= {"norm_vs_epoch.png", "sweep.png", "recipes.png", "README.md", "PORTING.md"}
    assert names == expected
    assert {p.name for p in tmp_path.iterdir()} == expected
    for p in paths:
        assert p.stat().st_size > 0
    for png in ("norm_vs_epoch.png", "sweep.png", "recipes.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
    art = pd.read_csv(tmp_path / "article.csv")
    assert art.loc[art["l2"] == 0.01, "keras_test_accuracy_mean"].item() == pytest.approx(0.85)
    rec = pd.read_csv(tmp_path / "recipes.csv")
    naive = rec[rec["regularization"] == "naive_wd"].iloc[0]
    assert naive["delta_accuracy_mean"] == pytest.approx(-0.05)  # 0.8 - 0.9, 0.8 - 0.8
    assert naive["delta_accuracy_n"] == 2
    par = pd.read_csv(tmp_path / "parity.csv")
    assert list(par.columns) == report.PARITY_FIELDS and len(par) == 4
    readme = (tmp_path / "README.md").read_text()
    for name in expected - {"README.md"}:
        assert f"`{name}`" in readme
    assert "seeds 0, 1" in readme and "epochs 2" in readme and "commit" in readme.lower()
    assert "numpy 2.0" in readme and "abc123" in readme
    assert "runs.jsonl" in readme and "parity.jsonl" in readme


def test_write_reports_skips_empty_parts(tmp_path):
    runs = two_seed_article()
    paths = report.write_reports(tmp_path, runs, [], {"article": keys(runs)})
    assert {p.name for p in paths} == {"article.csv", "article.md", "norm_vs_epoch.png", "README.md"}


def test_headline_reads_back_mlp_rows(tmp_path):
    runs = two_seed_article() + [record(model="cnn", seed=s, test_accuracy=0.5) for s in (0, 1)]
    report.write_reports(tmp_path / "results", runs, [], {"article": keys(runs)})
    text = report.headline(tmp_path / "results")
    assert "0.850 ± 0.071" in text and "cnn" not in text
    assert "(results/norm_vs_epoch.png)" in text


def test_no_framework_imported():
    # in a fresh interpreter: other test modules in the same pytest run may import frameworks
    code = ("import sys, comparisons.report; "
            "print(sorted({'torch', 'keras', 'tensorflow', 'jax'} & {m.split('.')[0] for m in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]"
