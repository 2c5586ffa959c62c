"""The reports floor, files: what write_reports writes and indexes, the headline, and records of the
current code only (synthetic records: tests/report_records.py)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from l2compare.reports import index
from l2compare.reports import parity_tables as parity_report
from l2compare.core.verdicts import EXACT_FLOAT64
from l2compare.parity.runner import SLACK
from report_records import SGD, keys, parity_record, record, study, two_seed_article


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
