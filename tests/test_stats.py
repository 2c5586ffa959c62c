"""Tests for l2compare.reports.stats, against values computable by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from l2compare.reports.stats import aggregate, fmt_mean_std, summarize

# Student t 97.5% quantiles in closed form, independent of scipy:
# df=2: (2p-1)/sqrt(2p(1-p)) = 4.30265272974946...; df=1 (Cauchy): tan(pi(p-1/2)).
T975_DF2 = 0.95 / math.sqrt(2 * 0.975 * 0.025)
T975_DF1 = math.tan(math.pi * 0.475)


def test_summarize_three_values():
    s = summarize([1, 2, 3])
    half = T975_DF2 * 1.0 / math.sqrt(3)
    assert s["n"] == 3 and s["n_missing"] == 0
    assert s["mean"] == 2.0
    assert s["std"] == 1.0  # ddof=1: sqrt((1 + 0 + 1) / 2)
    assert s["ci95_low"] == pytest.approx(2 - half, rel=1e-12)
    assert s["ci95_high"] == pytest.approx(2 + half, rel=1e-12)
    assert s["ci95_high"] == pytest.approx(4.484137711750330, rel=1e-12)  # 2 + 2.4841377...


def test_summarize_two_values_uses_df1():
    s = summarize([0.5, 1.5])
    std = math.sqrt(0.5)  # ((-0.5)^2 + 0.5^2) / 1
    assert s["std"] == pytest.approx(std, rel=1e-15)
    assert s["ci95_high"] - s["mean"] == pytest.approx(T975_DF1 * std / math.sqrt(2), rel=1e-12)


def test_summarize_single_value_has_no_spread():
    s = summarize([0.7])
    assert s["n"] == 1 and s["mean"] == 0.7
    assert math.isnan(s["std"])
    assert math.isnan(s["ci95_low"]) and math.isnan(s["ci95_high"])


def test_summarize_empty():
    s = summarize([])
    assert s["n"] == 0 and s["n_missing"] == 0
    assert all(math.isnan(s[k]) for k in ("mean", "std", "ci95_low", "ci95_high"))


def test_summarize_ignores_and_counts_missing():
    s = summarize([1.0, None, float("nan"), 3.0, np.nan, pd.NA])
    assert s["n"] == 2 and s["n_missing"] == 4
    assert s["mean"] == 2.0
    assert s["std"] == pytest.approx(math.sqrt(2), rel=1e-15)
    assert summarize([None, None]) == pytest.approx(
        {"n": 0, "n_missing": 2, "mean": math.nan, "std": math.nan,
         "ci95_low": math.nan, "ci95_high": math.nan}, nan_ok=True)


def test_summarize_accepts_numpy_and_series():
    assert summarize(np.array([1.0, 2.0, 3.0]))["std"] == 1.0
    assert summarize(pd.Series([1.0, None, 3.0]))["n_missing"] == 1


def test_aggregate_groups_in_first_appearance_order():
    df = pd.DataFrame({
        "model": ["mlp", "cnn", "mlp", "cnn", "mlp", None],
        "recipe": ["penalty"] * 6,
        "acc": [1.0, 0.5, 2.0, None, 3.0, 0.25],
        "norm": [10.0, 20.0, 10.0, 40.0, 10.0, 5.0],
    })
    out = aggregate(df, ["model", "recipe"], ["acc", "norm"])
    assert list(out.columns) == [
        "model", "recipe",
        "acc_mean", "acc_std", "acc_ci95_low", "acc_ci95_high", "acc_n",
        "norm_mean", "norm_std", "norm_ci95_low", "norm_ci95_high", "norm_n",
    ]
    assert out["model"].tolist()[:2] == ["mlp", "cnn"]  # sort=False
    assert pd.isna(out["model"].iloc[2])  # dropna=False keeps the run with no model

    mlp = out.iloc[0]
    assert (mlp["acc_mean"], mlp["acc_std"], mlp["acc_n"]) == (2.0, 1.0, 3)
    assert mlp["acc_ci95_high"] == pytest.approx(2 + T975_DF2 / math.sqrt(3), rel=1e-12)
    assert (mlp["norm_mean"], mlp["norm_std"]) == (10.0, 0.0)
    assert mlp["norm_ci95_low"] == mlp["norm_ci95_high"] == 10.0

    cnn = out.iloc[1]
    assert cnn["acc_n"] == 1 and cnn["acc_mean"] == 0.5 and math.isnan(cnn["acc_std"])
    assert cnn["norm_n"] == 2 and cnn["norm_mean"] == 30.0
    assert cnn["norm_std"] == pytest.approx(math.sqrt(200), rel=1e-15)

    assert out.iloc[2]["acc_mean"] == 0.25 and out.iloc[2]["acc_n"] == 1


def test_aggregate_without_groups_and_on_empty_frames():
    df = pd.DataFrame({"acc": [1.0, 2.0, 3.0]})
    out = aggregate(df, [], ["acc"])
    assert len(out) == 1 and out["acc_mean"].iloc[0] == 2.0 and out["acc_n"].iloc[0] == 3
    empty = aggregate(df.iloc[:0].assign(m=[]), ["m"], ["acc"])
    assert len(empty) == 0 and list(empty.columns)[:2] == ["m", "acc_mean"]


def test_aggregate_names_missing_columns():
    with pytest.raises(KeyError, match=r"no column\(s\) \['seed'\]"):
        aggregate(pd.DataFrame({"acc": [1.0]}), ["seed"], ["acc"])


@pytest.mark.parametrize(
    "mean, std, digits, expected",
    [
        (0.91234, 0.00412, 3, "0.912 ± 0.004"),
        (0.91234, 0.00412, 2, "0.91 ± 0.00"),
        (0.9, float("nan"), 3, "0.900"),
        (0.9, None, 3, "0.900"),
        (float("nan"), 0.1, 3, "—"),
        (None, None, 3, "—"),
        (np.float64(12.5), np.float64(0.25), 1, "12.5 ± 0.2"),  # round-half-even in format
    ],
)
def test_fmt_mean_std(mean, std, digits, expected):
    assert fmt_mean_std(mean, std, digits) == expected
