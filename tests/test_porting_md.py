"""PORTING.md: numbers come from the records, and every linked proof exists."""
import ast
import re
from pathlib import Path

from comparisons import porting_md

ROOT = Path(__file__).resolve().parents[1]


def _parity(row, column, dtype, worst, verdict):
    return {"key": f"{row}{column}{dtype}", "row": row, "column": column, "dtype": dtype, "worst": worst,
            "verdict": verdict, "steps": 52, "versions": {"keras": "3.x", "torch": "2.x"}, "commit": "abc"}


def test_every_linked_proof_is_a_real_test():
    for link in porting_md.PROOF.values():
        path, name = re.match(r"\[`(.+?)::(.+?)`\]", link).groups()
        tree = ast.parse((ROOT / "comparisons" / path).read_text())
        names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        assert name in names, f"PORTING.md links to {path}::{name}, which does not exist"


def test_numbers_come_from_parity_records(tmp_path):
    parity = [_parity("l2 on kernels / adam", "penalty", "float32", 1.25e-7, "exact"),
              _parity("l2 on kernels / adam", "penalty", "float64", 3.5e-16, "exact"),
              _parity("l2 on kernels / adam", "stock_torch", "float32", 4.56e-3, "wrong")]
    text = porting_md.write(tmp_path, [], parity).read_text()
    assert "| adam | exact (1.2e-07) / exact (3.5e-16) |" in text
    assert "wrong (4.6e-03) / —" in text
    assert "commit `abc`" in text
    assert porting_md.write(tmp_path, [], []) is None  # nothing measured, nothing written
