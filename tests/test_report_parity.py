"""The reports floor, parity and float32 study: the verdict grid, its detail tables and the float32 study,
on synthetic records (tests/report_records.py)."""
from __future__ import annotations


import pandas as pd
import pytest

from l2compare.reports import float32_study
from l2compare.reports import parity_tables as parity_report
from l2compare.parity.onestep import TIE
from l2compare.core.verdicts import CLOSE, EXACT_FLOAT64
from l2compare.parity.runner import CLOSE_STEP, OUTLIER, SLACK
from report_records import MOMENTUM, cells, new_record, parity_record, study


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
