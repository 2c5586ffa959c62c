"""The reports floor, run tables: frames, article/recipes/sweep tables and registered columns, on small
synthetic records (tests/report_records.py) with numbers checkable by hand."""
from __future__ import annotations

import math
import random
from contextlib import contextmanager

import pandas as pd
import pytest

from l2compare.reports import frames, index, tables
from l2compare.core import columns
from l2compare.core.spec import OptimizerSpec
from report_records import SGD, T975_DF1, cells, keys, record, two_seed_article


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
