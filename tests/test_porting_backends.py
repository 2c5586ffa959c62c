"""parity.md's grid per Keras backend and PORTING.md's backend section: from the records, every proof real."""
import ast
import math
import re
from pathlib import Path

from l2compare.core.spec import OptimizerSpec, RunSpec
from l2compare.reports.porting import backends as porting_backends, guide as porting_guide
from l2compare.reports.parity_tables import parity_markdown, split_by_backend

ROOT = Path(__file__).resolve().parents[1]


def _cell(row, column, dtype, verdict, score, keras_column=None):
    record = {"key": f"{keras_column}{row}{column}{dtype}", "row": row, "column": column, "dtype": dtype,
              "verdict": verdict, "score": score, "worst": score, "steps": 52, "commit": "abc",
              "versions": {"keras": "3.x", "torch": "2.x"}, "case": {"model": "mlp"}}
    if keras_column:
        record.update(keras_column=keras_column, versions={"keras": "3.x", "torch": "2.x", "jax": "0.y"})
    return record


def _grid(keras_column=None, exact64=2e-16):
    out = []
    for row, exact in (("l2 on kernels / sgd", "penalty"), ("weight_decay / adamw", "decoupled")):
        out += [_cell(row, exact, "float64", "exact" if exact64 < 1e-12 else "close", exact64, keras_column),
                _cell(row, exact, "float32", "exact", 9e-8, keras_column),
                _cell(row, "naive_wd", "float64", "wrong", 9.5e-3, keras_column)]
    return out


def _run(framework, seed, test_accuracy, reg_sq):
    spec = RunSpec(model="mlp", framework=framework, regularization="l2" if framework != "torch" else "penalty",
                   l2=0.01, optimizer=OptimizerSpec("adam"), seed=seed)
    return {"key": spec.key, "spec": spec.to_dict(), "seed": seed, "status": "ok", "framework": framework,
            "history": [], "norms": {"hidden/kernel": math.sqrt(reg_sq)}, "regularized_sq": reg_sq,
            "final": {"test_accuracy": test_accuracy, "accuracy": test_accuracy, "loss": 0.3}}


def test_records_split_by_keras_column_older_records_are_tensorflows():
    reference, backends = split_by_backend(_grid() + _grid("keras_torch", 1e-8) + _grid("keras_jax"))
    assert len(reference) == 6 and all("keras_column" not in p for p in reference)
    assert list(backends) == ["keras_jax", "keras_torch"]   # registry order, whatever the record order


def test_parity_md_has_a_grid_per_backend():
    text = parity_markdown(_grid() + _grid("keras_jax") + _grid("keras_torch", 1.3e-8))
    jax = text.index("## The grid with Keras on JAX (`keras_jax`)")
    torch = text.index("## The grid with Keras on torch (`keras_torch`)")
    assert jax < torch
    assert "close 1.3e-08" in text[torch:] and "close" not in text[jax:torch]
    assert "jax 0.y" in text[jax:torch]


def test_the_backend_summary_reads_each_backends_exact_recipe_from_its_records():
    reference, backends = split_by_backend(_grid() + _grid("keras_jax") + _grid("keras_torch", 1.3e-8))
    table = porting_backends.grid_summary(reference, backends)
    assert list(table.columns) == ["Keras config / optimizer", "torch recipe", "Keras", "Keras (JAX)", "Keras (torch)"]
    row = table.set_index("Keras config / optimizer").loc["weight_decay / adamw"]
    assert row["torch recipe"] == "decoupled"
    assert row["Keras (JAX)"] == "exact 9.0e-08 / exact 2.0e-16"
    assert row["Keras (torch)"] == "exact 9.0e-08 / close 1.3e-08"
    assert porting_backends.exact_counts(backends["keras_torch"]) == {"float32": "2/2", "float64": "0/2"}


def test_porting_md_gets_the_backend_section_with_the_native_shift(tmp_path):
    reference, backends = split_by_backend(_grid() + _grid("keras_jax") + _grid("keras_torch", 1.3e-8))
    runs = [_run("keras", s, 0.90, 4.0) for s in (0, 1)] + [_run("keras_jax", s, 0.92, 9.0) for s in (0, 1)]
    text = porting_guide.write(tmp_path, runs, reference, [], backends).read_text()
    section = text[text.index("## 9. Keras on JAX or torch instead of a port"):]
    assert "Keras 2/2 in float32, 2/2 in float64; Keras (JAX) 2/2 in float32, 2/2 in float64; " \
           "Keras (torch) 2/2 in float32, 0/2 in float64" in section
    # Keras on JAX against Keras on TensorFlow, seeds paired: Δ acc +0.02, norm ratio 3/2
    shift = next(line for line in section.splitlines() if line.startswith("| mlp ") and "Keras (JAX)" in line)
    assert "+0.020" in shift and "1.500" in shift
    assert "sum(model.losses)" in section
    without = porting_guide.write(tmp_path, runs, reference, []).read_text()
    assert "instead of a port" not in without


def test_every_proof_the_backend_section_names_is_a_real_test():
    for proof in porting_backends.PROOF.values():
        path, _, name = proof.strip("`").partition("::")
        assert (ROOT / path).exists(), path
        if name:
            tree = ast.parse((ROOT / path).read_text())
            assert name in {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}, proof
    assert re.search(r"test_jax_threads\.py", porting_backends.PROOF["threads"])
