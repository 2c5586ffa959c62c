"""Tests for the reports floor (frames, tables, plots, parity, float32 study, index) on small synthetic
records with numbers checkable by hand."""
from __future__ import annotations

import math
import random
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest

from l2compare.reports import float32_study, frames, index, tables
from l2compare.reports import parity_tables as parity_report
from l2compare.parity.onestep import TIE
from l2compare.core.verdicts import CLOSE, EXACT_FLOAT64
from l2compare.parity.runner import CLOSE_STEP, OUTLIER, SLACK
from l2compare.core import columns
from l2compare.core.spec import OptimizerSpec, RunSpec

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
    """A record as written before the one-step verdict: no score, no one-step data, no study flag."""
    return {"key": f"{row}{column}{dtype}", "row": row, "column": column, "dtype": dtype, "worst": worst,
            "worst_tensor": "out/kernel", "worst_step": 52, "per_tensor": {"out/kernel": worst},
            "loss_diff": worst / 10, "verdict": verdict, "steps": 52,
            "case": {"model": "mlp", "dataset": "article", "n_samples": 100, "batch_size": 32, "seed": 0,
                     "optimizer": {"name": "adam"}, "torch_epsilon": 1e-7},
            "versions": {"keras": "3.0"}, "commit": "abc123"}


def onestep(cross, floor, margins, outliers=None):
    """A record's one-step summary from per-step series (max over tensors), as OneStep.summary writes it."""
    cross, floor = list(cross), list(floor)
    excess = max(c - f for c, f in zip(cross, floor)) - SLACK
    return {"median": float(pd.Series(cross).median()), "max": max(cross),
            "floor_median": float(pd.Series(floor).median()),
            "max_excess": excess, "cross64_max": 1e-16, "per_tensor_median": {}, "ties": sum(m < TIE for m in margins),
            "min_margin": min(margins), "outliers": outliers or {},
            "series": {"cross": cross, "floor": floor, "torch_floor": [f / 2 for f in floor],
                       "keras_floor": [f / 2 for f in floor], "margin": list(margins)}}


def new_record(row, column, dtype="float32", verdict="exact", *, cross=(1e-7, 2e-7, 1e-7, 3e-7),
               floor=(2e-7, 3e-7, 2e-7, 4e-7), margins=(1.0, 1e-9, 1.0, 1e-3), outliers=None,
               trajectory=(1e-8, 2e-8, 4e-6, 3e-5), envelope=(1e-8, 5e-7, 6e-6, 2e-4), study=False, extra=False,
               model="mlp", dataset="article", optimizer=None, seed=0):
    """A record in the current format: float32 with one-step data, trajectory and envelope; float64 without."""
    optimizer = optimizer or {"name": "adam", "lr": None, "momentum": 0.0}
    one = onestep(cross, floor, margins, outliers) if dtype == "float32" else None
    rec = parity_record(row, column, dtype, max(trajectory), verdict)
    rec["case"].update(model=model, dataset=dataset, seed=seed, optimizer=optimizer, recipe="penalty",
                       keras_config="l2")
    rec.update(key=f"{row}{column}{dtype}{seed}", steps=len(trajectory), study=study, extra=extra,
               score=one["median"] if one else max(trajectory), trajectory=list(trajectory),
               envelope=list(envelope) if dtype == "float32" else None, onestep=one, machine={"cpu": "test"})
    return rec


MOMENTUM = {"name": "sgd", "lr": 0.01, "momentum": 0.9}


def study(model="cnn", optimizer="momentum", dataset="article", seeds=(0, 1), **kw):
    spec = {"momentum": MOMENTUM, "sgd": {"name": "sgd", "lr": 0.01}, "adam": {"name": "adam"}}[optimizer]
    return [new_record(f"{model} / {optimizer} / {dataset}", f"seed {s}", study=True, model=model, dataset=dataset,
                       optimizer=spec, seed=s, **kw) for s in seeds]


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
    df = frames.runs_frame([record(optimizer=OptimizerSpec("sgd", lr=0.01, momentum=0.9), reg_sq=9.0,
                                   test_accuracy=0.875, accuracy=0.5, seed=3)])
    row = df.iloc[0]
    assert row["optimizer"] == "momentum"
    assert row["regularized_norm"] == 3.0 and row["regularized_sq"] == 9.0
    assert (row["test_accuracy"], row["train_accuracy"], row["seed"]) == (0.875, 0.5, 3)
    assert row["norm:out/bias"] == 0.25
    norms = [c for c in df.columns if c.startswith("norm:")]
    assert norms == ["norm:hidden/kernel", "norm:hidden/bias", "norm:out/kernel", "norm:out/bias"]
    assert list(df.columns[:12]) == frames.ID_COLUMNS


def test_runs_frame_diverged_run_kept_with_nan_metrics():
    df = frames.runs_frame([record(), record(seed=1, status="diverged")])
    assert len(df) == 2
    bad = df[df["status"] == "diverged"].iloc[0]
    assert math.isnan(bad["test_accuracy"]) and math.isnan(bad["regularized_norm"])
    assert math.isnan(bad["norm:hidden/kernel"])
    assert bad["wall_time_s"] == 1.5  # timing is still a fact about the run


def test_epochs_frame_one_row_per_epoch():
    df = frames.epochs_frame([record(epochs=3, reg_sq=9.0), record(seed=1, epochs=3)])
    assert len(df) == 6
    first = df[df["seed"] == 0].sort_values("epoch")
    assert first["epoch"].tolist() == [1, 2, 3]
    assert first["regularized_norm"].tolist() == pytest.approx([math.sqrt(3), math.sqrt(6), 3.0])
    assert first["test_accuracy"].tolist() == pytest.approx([0.3, 0.6, 0.9])


# ---------------------------------------------------------------- tables


def test_article_table_mean_std_ci_over_seeds():
    table = tables.article_table(frames.runs_frame(two_seed_article()))
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
    md = tables.article_markdown(tables.article_table(frames.runs_frame(two_seed_article())))
    rows = cells(md)
    assert rows[0][:4] == ["model", "λ", "test acc (Keras l2)", "test acc (torch penalty)"]
    assert rows[2][:4] == ["mlp", "none", "0.850 ± 0.071", "0.650 ± 0.071"]
    assert rows[2][-1] == "2"
    assert ["mlp", "0.01", "hidden/kernel", "2.500 ± 0.707", "1.000 ± 0.000"] in rows


def test_diverged_run_is_counted_not_dropped():
    runs = two_seed_article() + [record(framework="torch", regularization="penalty", seed=2, status="diverged")]
    table = tables.article_table(frames.runs_frame(runs))
    row = table[table["l2"] == 0.01].iloc[0]
    assert row["torch_diverged"] == 1 and row["keras_diverged"] == 0
    assert row["torch_test_accuracy_n"] == 2  # the NaN is not averaged in
    assert row["torch_test_accuracy_mean"] == pytest.approx(0.65)
    rows = cells(tables.article_markdown(table))
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
    table = tables.recipes_table(frames.runs_frame(runs))
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
    row = tables.recipes_table(frames.runs_frame(runs)).iloc[1]
    # Δ = 0.0, -0.1: mean -0.05, std √0.005; ratio = 0.5, 1.5: mean 1, std √0.5
    assert row["delta_accuracy_mean"] == pytest.approx(-0.05)
    assert row["delta_accuracy_ci95_low"] == pytest.approx(-0.05 - T975_DF1 * math.sqrt(0.005) / math.sqrt(2))
    assert row["norm_ratio_ci95_high"] == pytest.approx(1 + T975_DF1 * math.sqrt(0.5) / math.sqrt(2))
    md = tables.recipes_markdown(tables.recipes_table(frames.runs_frame(runs)))
    assert md.startswith("### mlp, adam")
    rows = cells(md)
    assert rows[2][:3] == ["Keras l2 (reference)", "0.850 ± 0.071", "2.000 ± 0.000"] and rows[2][3:5] == ["", ""]
    assert rows[3][0] == "torch naive_wd" and rows[3][3].startswith("-0.050 [") and rows[3][4].startswith("1.000 [")


def test_recipes_duplicate_keras_run_is_an_error():
    runs = [record(), record(), record(framework="torch", regularization="penalty")]
    with pytest.raises(pd.errors.MergeError):
        tables.recipes_table(frames.runs_frame(runs))


def test_sweep_table_per_lambda_and_framework():
    runs = [record(l2=l2, seed=s, test_accuracy=0.5 + s / 10 + l2) for l2 in (0.0, 0.1) for s in (0, 1)]
    runs += [record(framework="torch", regularization="penalty", l2=0.1, seed=s) for s in (0, 1)]
    table = tables.sweep_table(frames.runs_frame(runs))
    assert table[["l2", "framework"]].values.tolist() == [[0.0, "keras"], [0.1, "keras"], [0.1, "torch"]]
    assert table.iloc[1]["test_accuracy_mean"] == pytest.approx(0.65)
    rows = cells(tables.sweep_markdown(table))
    assert rows[2] == ["mlp", "none", "0.550 ± 0.071", "—", "2.000 ± 0.000", "—", "2 / 0"]
    assert rows[3][:4] == ["mlp", "0.1", "0.650 ± 0.071", "0.900 ± 0.000"]


@contextmanager
def keras_copy_column():
    """A second Keras column, registered for the test only: the tables must pick it up from the registry."""
    column = columns.register(columns.Column("keras_copy", "keras", "tensorflow", "keras_impl.worker", "Keras copy"))
    try:
        yield column
    finally:
        columns.unregister(column.name)


def test_a_registered_column_with_records_gets_a_side_in_every_run_table(tmp_path):
    with keras_copy_column():
        copy = [record(framework="keras_copy", l2=l2, seed=s, test_accuracy=0.5) for l2 in (0.01, 0.0) for s in (0, 1)]
        runs = two_seed_article() + copy
        df = frames.runs_frame(runs)
        article = tables.article_table(df)
        assert article.loc[article["l2"] == 0.01, "keras_copy_test_accuracy_mean"].item() == pytest.approx(0.5)
        rows = cells(tables.article_markdown(article))
        assert rows[0][:5] == ["model", "λ", "test acc (Keras l2)", "test acc (torch penalty)",
                               "test acc (Keras copy l2)"]  # registry order
        assert rows[2][:5] == ["mlp", "none", "0.850 ± 0.071", "0.650 ± 0.071", "0.500 ± 0.000"]
        assert ["mlp", "0.01", "hidden/kernel", "2.500 ± 0.707", "1.000 ± 0.000", "2.000 ± 0.000"] in rows
        sweep = tables.sweep_table(df)
        assert sweep["framework"].tolist() == ["keras", "torch", "keras_copy"] * 2
        assert "test acc (Keras copy l2)" in cells(tables.sweep_markdown(sweep))[0]
        compare = cells(tables.compare_table(df))
        assert ["keras_copy", "l2", "0.500 ± 0.000"] == compare[-1][:3]
        index.write_reports(tmp_path, runs, [], {"article": keys(runs), "sweep": keys(runs)})
        assert "Keras copy l2" in (tmp_path / "article.md").read_text()
        assert "Keras copy l2" in (tmp_path / "sweep.md").read_text()
        assert "Keras copy l2" in index.headline(tmp_path)  # read back from article.csv


def test_a_registered_column_without_records_changes_no_table():
    df = frames.runs_frame(two_seed_article())
    before = [tables.article_markdown(tables.article_table(df)), tables.sweep_markdown(tables.sweep_table(df)),
              tables.compare_table(df)]
    with keras_copy_column():
        after = [tables.article_markdown(tables.article_table(df)), tables.sweep_markdown(tables.sweep_table(df)),
                 tables.compare_table(df)]
    assert after == before


def test_only_sides_with_records_appear():
    runs = [record(seed=s) for s in (0, 1)]  # Keras l2 only
    rows = cells(tables.article_markdown(tables.article_table(frames.runs_frame(runs))))
    assert rows[0][:3] == ["model", "λ", "test acc (Keras l2)"]
    assert not any("torch" in c for c in rows[0])


def test_parity_pivot_places_cells():
    parity = [parity_record("l2 / adam", "coupled", "float32", 3e-8, "exact"),
              parity_record("l2 / adam", "coupled", "float64", 2.04e-4, "close"),
              parity_record("wd / sgd", "stock_torch", "float64", 0.5, "wrong"),
              parity_record("l2 / adam", "penalty", "float32", 1e-7, "exact")]
    pivot = parity_report.parity_pivot(parity_report.parity_frame(parity))
    # canonical column order, only the columns that have cells
    assert list(pivot.columns) == ["Keras config / optimizer", "penalty", "coupled", "stock_torch"]
    assert pivot["Keras config / optimizer"].tolist() == ["l2 / adam", "wd / sgd"]
    # records without a score (older format): the number shown is their worst |Δw|
    assert pivot.iloc[0]["coupled"] == "exact 3.0e-08 / close 2.0e-04"
    assert pivot.iloc[0]["penalty"] == "exact 1.0e-07 / —"
    assert pivot.iloc[1]["stock_torch"] == "— / wrong 5.0e-01"
    assert pivot.iloc[1]["coupled"] == "— / —"
    md = parity_report.parity_markdown(parity)
    assert "52 training steps" in md
    assert "penalty/coupled carry no λ" in md
    assert "ε = — in float32, 1e-07 in float64" in md  # from the stock_torch Adam cell (float64 only here)
    assert "float32 cells in detail" not in md  # no record carries one-step data


def test_parity_legend_cites_the_constants():
    md = parity_report.parity_markdown([new_record("l2 / sgd", "penalty"), new_record("l2 / sgd", "penalty", "float64")])
    assert f"**exact** ≤ {EXACT_FLOAT64:g}" in md and f"**close** ≤ {CLOSE:g}" in md
    assert f"+ {SLACK:g}" in md and f"at most {CLOSE_STEP:g} of max |w|" in md
    assert f"exceeds {OUTLIER:g} of max |w|" in md and f"{TIE:.3g}" in md
    assert "1e-05" not in md  # the retired fixed float32 bound is no definition any more


def test_parity_cells_show_the_score_and_the_grid_leaves_out_study_and_extra_records():
    parity = [new_record("l2 / sgd", "penalty", cross=(8.9e-8, 9e-8, 8.8e-8)),
              new_record("l2 / sgd", "penalty", "float64", trajectory=(1e-16, 1.1e-16, 1.1e-16)),
              new_record("l2 / adam (cnn)", "no_flatten_permutation", extra=True, verdict="wrong"),
              *study()]
    md = parity_report.parity_markdown(parity)
    pivot = parity_report.parity_pivot(parity_report.parity_frame(parity[:2]))
    assert pivot.iloc[0]["penalty"] == "exact 8.9e-08 / exact 1.1e-16"  # float32: the one-step median
    grid_table = md.split("## Other mistakes")[0]
    assert "cnn / momentum" not in md  # study records: float32.md, not parity.md
    assert "no_flatten_permutation" not in grid_table and "no_flatten_permutation" in md


def test_parity_detail_table_and_csv_carry_onestep_trajectory_and_envelope(tmp_path):
    f32 = new_record("l2 / sgd", "penalty", cross=(1e-7, 2e-6, 2e-7, 3e-6), floor=(2e-7, 3e-6, 2e-7, 1e-6),
                     margins=(1.0, 1e-9, 1.0, 1e-3), outliers={"2": "tie", "4": "unexplained"}, verdict="close")
    f64 = new_record("l2 / sgd", "penalty", "float64", trajectory=(1e-16, 2e-16))
    md = parity_report.parity_markdown([f32, f64])
    detail = md.split("## float32 cells in detail")[1]
    row = next(r for r in cells(detail) if r[:2] == ["l2 / sgd", "penalty"])
    # median of (1e-7, 2e-6, 2e-7, 3e-6) = 1.1e-6; cross − floor at most 2e-6 (step 4); 1 tie (margin < TIE)
    assert row[2:] == ["close", "1.1e-06", "3.0e-06", "2.0e-06", "1/4", "1 / 0 / 1", "3.0e-05", "2.0e-04"]
    assert len([r for r in cells(detail) if r[0] == "l2 / sgd"]) == 1  # float32 cells only
    exact = parity_report.parity_detail([new_record("a", "penalty")]).iloc[0]
    assert exact["max excess over the floor"] == f"≤ {SLACK:g}"
    frame = parity_report.parity_frame([f32, f64])
    assert list(frame.columns) == parity_report.PARITY_FIELDS
    first = frame.iloc[0]
    assert first["score"] == pytest.approx(1.1e-6) and first["onestep_max"] == pytest.approx(3e-6)
    assert first["excess_over_floor"] == pytest.approx(2e-6) and first["tie_steps"] == 1
    assert (first["outliers_tie"], first["outliers_floor"], first["outliers_unexplained"]) == (1, 0, 1)
    assert first["envelope_max"] == pytest.approx(2e-4) and first["worst"] == pytest.approx(3e-5)
    second = frame.iloc[1]
    assert second["score"] == pytest.approx(2e-16) and pd.isna(second["onestep_median"])
    assert pd.isna(second["tie_steps"]) and pd.isna(second["envelope_max"])


def test_float32_study_table_per_dataset_model_optimizer():
    # seed 0 drifts past the old bound (3e-5), seed 1 stays under it (max 4e-6); seed 2 has another
    # one-step series; 1 of 4 steps ties (margin 1e-9 < TIE) in seeds 0 and 1, none in seed 2
    records = study(seeds=(0, 1), outliers={"2": "tie"})
    records[1]["trajectory"] = [1e-8, 2e-8, 3e-7, 4e-6]
    records[1]["worst"] = 4e-6
    records += study(seeds=(2,), cross=(1e-7, 1e-7, 1e-7, 5e-7), margins=(1.0, 1.0, 1.0, 1.0),
                     outliers={"4": "floor"}, verdict="close")
    records += study(model="mlp", optimizer="sgd", dataset="digits", seeds=(0,))
    records += [new_record("l2 / sgd", "penalty")]  # grid: not part of the study
    table = float32_study.float32_table(records)
    assert table[["dataset", "model", "optimizer"]].values.tolist() == [["article", "cnn", "momentum"],
                                                                        ["digits", "mlp", "sgd"]]
    cnn = table.iloc[0]
    assert cnn["n"] == 3 and cnn["trajectory_le_old_bound"] == 1
    assert cnn["onestep_median_median"] == pytest.approx(1.5e-7)  # medians 1.5e-7, 1.5e-7, 1e-7
    assert cnn["onestep_median_max"] == pytest.approx(1.5e-7)
    assert cnn["onestep_max"] == pytest.approx(5e-7)
    assert cnn["floor_median"] == pytest.approx(2.5e-7)
    assert cnn["tie_fraction"] == pytest.approx(2 / 12)
    assert (cnn["outliers_tie"], cnn["outliers_floor"], cnn["outliers_unexplained"]) == (2, 1, 0)
    assert (cnn["exact"], cnn["close"], cnn["wrong"]) == (2, 1, 0)
    assert float32_study.OLD_BOUND == 1e-5
    md = float32_study.float32_markdown(table, records)
    row = next(r for r in cells(md) if r[:3] == ["article", "cnn", "momentum"])
    assert row[3:8] == ["3", "1/3", "1.5e-07 / 1.5e-07", "5.0e-07", "2.5e-07"]
    assert row[8:11] == ["17%", "2 / 1 / 0", "2 / 1 / 0"]
    assert "over 4 cases" in md and "partial run of the study's 90" in md
    assert "float32_cnn.png" in md
    s = float32_study.float32_summary(records)
    assert s["under_old_bound"] == 1 and s["exact"] == 3 and s["cases"] == 4  # the mlp case drifts to 3e-5
    assert float32_study.float32_summary([new_record("l2 / sgd", "penalty")]) is None


def test_float32_study_extent_names_a_full_cross_product():
    records = [r for d in ("article", "digits") for m in ("mlp", "cnn")
               for r in study(model=m, dataset=d, seeds=(0, 1, 2))]
    assert float32_study.float32_summary(records)["extent"].startswith("3 seeds × 2 data sets × 2 models × 1 optimizers")


def test_float32_plot_picks_the_cnn_momentum_article_case_with_the_lowest_seed(tmp_path):
    records = [new_record("a (cnn)", "no_flatten_permutation", extra=True, model="cnn"),
               *study(model="cnn", optimizer="adam", seeds=(0,)), *study(seeds=(3, 1))]
    assert float32_study._float32_case(records)["case"]["seed"] == 1
    assert float32_study._float32_case(records)["case"]["optimizer"] == MOMENTUM
    fallback = float32_study._float32_case(records[:2])  # no cnn/momentum/article: any study cnn case, never a mistake
    assert fallback["study"] and fallback["case"]["optimizer"]["name"] == "adam"
    assert float32_study._float32_case(records[:1]) is None
    path = tmp_path / "f.png"
    assert float32_study.plot_float32_case(records, path)
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert not float32_study.plot_float32_case([new_record("l2 / sgd", "penalty")], tmp_path / "g.png")


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
    parity += study(seeds=(0, 1)) + study(model="mlp", optimizer="sgd", dataset="digits", seeds=(0,))
    paths = index.write_reports(tmp_path, runs, parity, experiments)
    names = {p.name for p in paths}
    expected = {f"{t}.{e}" for t in ("article", "recipes", "sweep", "parity", "float32") for e in ("csv", "md")}
    expected |= {"norm_vs_epoch.png", "sweep.png", "recipes.png", "float32_cnn.png", "README.md", "PORTING.md"}
    assert names == expected
    assert {p.name for p in tmp_path.iterdir()} == expected
    for p in paths:
        assert p.stat().st_size > 0
    for png in ("norm_vs_epoch.png", "sweep.png", "recipes.png", "float32_cnn.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
    art = pd.read_csv(tmp_path / "article.csv")
    assert art.loc[art["l2"] == 0.01, "keras_test_accuracy_mean"].item() == pytest.approx(0.85)
    rec = pd.read_csv(tmp_path / "recipes.csv")
    naive = rec[rec["regularization"] == "naive_wd"].iloc[0]
    assert naive["delta_accuracy_mean"] == pytest.approx(-0.05)  # 0.8 - 0.9, 0.8 - 0.8
    assert naive["delta_accuracy_n"] == 2
    par = pd.read_csv(tmp_path / "parity.csv")
    assert list(par.columns) == parity_report.PARITY_FIELDS and len(par) == 7
    assert par["study"].tolist() == [False] * 4 + [True] * 3
    f32 = pd.read_csv(tmp_path / "float32.csv")
    assert f32["n"].tolist() == [2, 1] and f32["model"].tolist() == ["cnn", "mlp"]
    readme = (tmp_path / "README.md").read_text()
    for name in expected - {"README.md"}:
        assert f"`{name}`" in readme
    assert "seeds 0, 1" in readme and "epochs 2" in readme and "commit" in readme.lower()
    assert "numpy 2.0" in readme and "abc123" in readme
    assert "runs.jsonl" in readme and "parity.jsonl" in readme
    assert "4 grid, 0 other mistakes, 3 float32 study" in readme
    assert f"**exact** ≤ {EXACT_FLOAT64:g}" in readme and f"+ {SLACK:g}" in readme


def test_write_reports_skips_empty_parts(tmp_path):
    runs = two_seed_article()
    paths = index.write_reports(tmp_path, runs, [], {"article": keys(runs)})
    assert {p.name for p in paths} == {"article.csv", "article.md", "norm_vs_epoch.png", "README.md"}


def test_headline_reads_back_mlp_rows(tmp_path):
    runs = two_seed_article() + [record(model="cnn", seed=s, test_accuracy=0.5) for s in (0, 1)]
    index.write_reports(tmp_path / "results", runs, [], {"article": keys(runs)})
    text = index.headline(tmp_path / "results")
    assert "0.850 ± 0.071" in text and "cnn" not in text
    assert "(results/norm_vs_epoch.png)" in text


def test_no_framework_imported():
    # in a fresh interpreter: other test modules in the same pytest run may import frameworks
    code = ("import sys, l2compare.reports.index, l2compare.reports.bench_table; "
            "print(sorted({'torch', 'keras', 'tensorflow', 'jax'} & {m.split('.')[0] for m in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]"


def test_reports_use_only_records_of_the_current_code(tmp_path):
    """Keys hash the code: records made by older code stay in the stores but never reach a table."""
    import json

    from l2compare import pipeline
    from l2compare.parity.grid import cells

    current = cells()[0]
    stale = {"key": "stale-key", "row": current.row, "column": current.column, "dtype": current.dtype,
             "verdict": "wrong", "worst": 1.0, "score": 1.0, "steps": 52, "case": {}}
    (tmp_path / "parity.jsonl").write_text(json.dumps(stale) + "\n")
    (tmp_path / "runs.jsonl").write_text(json.dumps({"key": "stale-run"}) + "\n")
    (tmp_path / "experiments.json").write_text(json.dumps({"article": ["not-run-yet"]}))
    pipeline.report(tmp_path)
    assert not (tmp_path / "parity.md").exists()
    assert pipeline._current([stale, {"key": "a"}, {"key": "b"}], ["b", "a", "b", "c"]) == [{"key": "b"}, {"key": "a"}]
