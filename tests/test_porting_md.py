"""PORTING.md: numbers come from the records, and every linked proof exists."""
import ast
import re
from pathlib import Path

from l2compare.reports.porting import guide as porting_md
from l2compare.reports.porting.snippets import PROOF
from l2compare.core.verdicts import EXACT_FLOAT64
from l2compare.parity.runner import CLOSE_STEP, SLACK

ROOT = Path(__file__).resolve().parents[1]


def _parity(row, column, dtype, worst, verdict, score=None):
    record = {"key": f"{row}{column}{dtype}", "row": row, "column": column, "dtype": dtype, "worst": worst,
              "verdict": verdict, "steps": 52, "versions": {"keras": "3.x", "torch": "2.x"}, "commit": "abc"}
    if score is not None:
        record["score"] = score
    return record


def _study(model, optimizer, dataset, seed, median, worst, ties, verdict="exact"):
    spec = {"sgd": {"name": "sgd", "lr": 0.01}, "momentum": {"name": "sgd", "lr": 0.01, "momentum": 0.9},
            "adam": {"name": "adam"}}[optimizer]
    return {**_parity(f"{model} / {optimizer} / {dataset}", f"seed {seed}", "float32", worst, verdict, median),
            "key": f"{model}{optimizer}{dataset}{seed}", "study": True, "extra": False,
            "case": {"model": model, "dataset": dataset, "seed": seed, "optimizer": spec},
            "steps": 4, "trajectory": [worst] * 4, "envelope": [1e-3] * 4,
            "onestep": {"median": median, "max": 2 * median, "floor_median": median, "max_excess": -SLACK,
                        "ties": ties, "outliers": {},
                        "series": {"cross": [median] * 4, "floor": [median] * 4, "margin": [1.0] * 4}}}


def _family_links() -> list[str]:
    from l2compare.reports.porting.families import PITFALLS

    return [m for _, text in PITFALLS.values() for m in re.findall(r"\[`[^`]+::[^`]+`\]", text)]


def test_every_linked_proof_is_a_real_test():
    assert len(_family_links()) >= 8
    for link in list(PROOF.values()) + _family_links():
        path, name = re.match(r"\[`(.+?)::(.+?)`\]", link).groups()
        tree = ast.parse((ROOT / "comparisons" / path).read_text())
        names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        assert name in names, f"PORTING.md links to {path}::{name}, which does not exist"


def test_numbers_come_from_parity_records(tmp_path):
    parity = [_parity("l2 on kernels / adam", "penalty", "float32", 1.25e-7, "exact", score=8.9e-8),
              _parity("l2 on kernels / adam", "penalty", "float64", 3.5e-16, "exact", score=3.5e-16),
              _parity("l2 on kernels / adam", "stock_torch", "float32", 4.56e-3, "wrong")]  # older record: no score
    text = porting_md.write(tmp_path, [], parity).read_text()
    flat = " ".join(text.split())
    assert "| adam | exact (8.9e-08) / exact (3.5e-16) |" in text  # float32 shows the score, not worst
    assert "wrong (4.6e-03) / —" in text
    assert "commit `abc`" in text
    assert f"max |Δw| ≤ {EXACT_FLOAT64:g}" in flat and f"≤ {CLOSE_STEP:g} of max |w|" in flat
    assert "float32: median one-step difference (of max \\|w\\|) / float64: max \\|Δw\\| over 52 steps" in text
    assert "after 52 steps (float32 / float64)" not in text
    assert "Over " not in text  # no study records: no study numbers
    assert porting_md.write(tmp_path, [], []) is None  # nothing measured, nothing written


def test_float32_paragraph_comes_from_the_study_records(tmp_path):
    grid = [_parity("l2 on kernels / sgd", "penalty", "float32", 6e-8, "exact", score=8.9e-8)]
    study = [_study(m, "sgd", "article", s, median, worst, ties)
             for m, s, median, worst, ties in [("mlp", 0, 8.6e-8, 3e-8, 0), ("mlp", 1, 8.7e-8, 4e-8, 0),
                                               ("cnn", 0, 9.0e-8, 5e-4, 2), ("cnn", 1, 9.4e-8, 2e-6, 2)]]
    text = porting_md.write(tmp_path, [], grid + study).read_text()
    float32 = " ".join(text[text.index('### What "exact" means in float32'):].split())
    assert "Over 4 cases (2 seeds × 1 data sets × 2 models × 1 optimizers" in float32
    assert "partial run of the study's 90" in float32
    assert "under the old fixed bound 1e-05 in 3" in float32
    assert "one-step medians are 8.6e-08–9.4e-08 of max |w|" in float32
    assert "25% of steps have a decision tie (50% of the CNN's)" in float32  # 4 of 16 steps, 4 of the CNN's 8
    assert "4 of 4 are exact" in float32
    assert "[float32.md](float32.md)" in float32 and "[float32_cnn.png](float32_cnn.png)" in float32
    assert PROOF["float32_lambda"] in float32
    # study records stay out of the porting tables
    assert "seed 0" not in text[:text.index('### What "exact" means in float32')]


def _verify_record(dtype, recipe, verdict, max_dw, notes=()):
    rule = {"float64": "float64: max |Δw| ≤ 1e-12 exact", "float32": "float32: exact within the envelope"}[dtype]
    return {"dtype": dtype, "recipe": recipe, "verdict": verdict, "max_dw": max_dw, "steps": 20, "batch_size": 8,
            "rule": rule, "notes": list(notes), "worst_tensor": "bn.weight", "worst_step": 3}


def test_layer_family_sections_come_from_the_verify_records(tmp_path):
    grid = [_parity("l2 on kernels / adam", "penalty", "float64", 3.5e-16, "exact", score=3.5e-16)]
    showcase = [{"family": "batchnorm", "model": "cifar_resnet", "optimizer": optimizer, "layers": "BatchNormalization",
                 "records": [_verify_record("float64", "penalty", "exact", 2.0e-15),
                             _verify_record("float64", "stock", verdict, 2.1e-3, ["stock torch Adam adds ε inside"]),
                             _verify_record("float32", "penalty", "exact", 1.2e-7)]}
                for optimizer, verdict in (("adam", "wrong"), ("momentum", "exact"))]
    text = porting_md.write(tmp_path, [], grid, showcase).read_text()
    families = re.sub(r" +", " ", text[text.index("## 9. Layers beyond Dense and Conv2D"):])
    assert "### BatchNormalization — `cifar_resnet`" in families and "### LSTM" not in families  # no records: no section
    assert "| adam | float64 | exact (2.0e-15) | — | wrong (2.1e-03) |" in families
    assert "| adam | float32 | exact (1.2e-07) | — | — |" in families
    assert "- stock torch Adam adds ε inside" in families
    assert "float64: max |Δw| ≤ 1e-12 exact; float32: exact within the envelope" in " ".join(families.split())
    assert "## 9." not in porting_md.write(tmp_path, [], grid).read_text()  # no verify records: no section
