"""The CLI: a user mistake gets one line on stderr and exit code 2, never a traceback."""
import os
import re
import subprocess
import sys

import pytest

from l2compare.engine import experiments
from l2compare import cli


@pytest.mark.parametrize("argv,message", [
    (["run", "articel"], "unknown experiment 'articel'; allowed: article, recipes, sweep, parity, verify, sweep_large, all"),
    (["run", "article", "--epochs", "0"], "--epochs: expected a whole number >= 1, got 0"),
    (["run", "article", "--dataset", "mnits"], "unknown data set 'mnits'"),
    (["run", "article", "--seeds", "-1"], "--seeds must be a count >= 1 or a list of seeds >= 0"),
    (["run", "article", "--seeds", "x"], "--seeds takes a count (3) or a list (0,5,7)"),
    (["run", "article", "--seeds", "1,1"], "--seeds lists seed 1 more than once"),
    (["compare", "--seeds", "0,5,7,5"], "--seeds lists seed 5 more than once"),
    (["run", "article", "--out", "/proc/x"], "--out /proc/x: cannot create or write the results folder"),
    (["compare", "--out", "/proc/x/y"], "--out /proc/x/y: cannot create or write the results folder"),
    (["compare", "--model", "resnet"], "invalid choice: 'resnet'"),
    (["compare", "--l2", "-0.1"], "λ must be finite and >= 0, got '-0.1'"),
    (["compare", "--l2", "inf"], "λ must be finite and >= 0, got 'inf'"),
    (["compare", "--recipes", "penalty,l1"], "unknown torch recipe 'l1'; allowed: penalty"),
    (["compare", "--optimizer", "rmsprop"], "invalid choice: 'rmsprop'"),
    (["compare", "--dataset", "npz:/nonexistent/file.npz"], "/nonexistent/file.npz"),
    (["compare", "--optimizer", "adam", "--momentum", "0.9"], "momentum applies to sgd only"),
    (["bench", "--models", "mlp,vgg"], "unknown model 'vgg'"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("l2compare: error: ") and message in err, err
    assert err.count("\n") == 1, f"expected one line, got: {err!r}"


def test_console_script_exit_code_and_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "l2compare.cli", "run", "nope"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "unknown experiment 'nope'" in proc.stderr


def test_out_that_is_a_file_or_read_only_is_one_line(tmp_path, capsys):
    """Checked before any run starts: a file in the way, or a folder that takes no files."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert cli.main(["run", "article", "--out", str(blocker / "results")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"l2compare: error: --out {blocker / 'results'}: cannot create") and err.count("\n") == 1
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.geteuid() != 0:  # root writes into it anyway: nothing to test then
            assert cli.main(["run", "article", "--out", str(locked)]) == 2
            assert "cannot create or write the results folder" in capsys.readouterr().err
    finally:
        locked.chmod(0o700)
    assert os.listdir(tmp_path) == ["file", "locked"] and not os.listdir(locked), "the check leaves nothing behind"


def test_out_check_runs_before_any_work(tmp_path, monkeypatch):
    """A bad --out must not cost a run: the pipeline is never reached."""
    from l2compare import pipeline

    monkeypatch.setattr(pipeline, "run_and_report", lambda *a, **k: pytest.fail("ran despite a bad --out"))
    assert cli.main(["run", "article", "--out", "/proc/x", "--no-progress"]) == 2


def test_console_script_bad_out_exit_code_and_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "l2compare.cli", "run", "article", "--out", "/proc/x"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr


def test_list_names_everything(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for word in ("article", "recipes", "sweep", "parity", "naive_adamw", "mlp_bias", "npz:PATH"):
        assert word in out


def test_seeds_count_and_list():
    assert cli._seeds("3") == (0, 1, 2)
    assert cli._seeds("0,5,7") == (0, 5, 7)
    assert cli._seeds("4,") == (4,)
    assert cli._seeds("2,0,1") == (2, 0, 1)  # order kept: distinct seeds in any order are fine


def test_the_parent_process_imports_no_framework():
    """Keras picks its backend at import and each framework's thread pools would disturb the other's
    timings: the CLI, harness, pipeline and reports must not import one."""
    code = ("import importlib, pkgutil, sys, l2compare.reports as reports, l2compare.cli, l2compare.pipeline, "
            "l2compare.engine.workers, l2compare.engine.experiments, l2compare.engine.bench_jobs, l2compare.parity.grid; "
            "[importlib.import_module(m.name) for m in pkgutil.walk_packages(reports.__path__, 'l2compare.reports.')]; "
            "print(sorted(m for m in ('torch', 'tensorflow', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- port and verify: a user's own .keras file --------------------------------------------------

@pytest.fixture(scope="module")
def keras_files(tmp_path_factory):
    """A small CNN with L2 (good.keras), a model with a custom layer, a text file named .keras, and data."""
    import keras
    import numpy as np
    from keras import layers, regularizers

    folder = tmp_path_factory.mktemp("keras_files")
    keras.utils.set_random_seed(0)
    keras.Sequential([keras.Input((8, 8, 1)),
                      layers.Conv2D(3, 3, activation="relu", kernel_regularizer=regularizers.l2(1e-3)),
                      layers.MaxPooling2D(2), layers.Flatten(),
                      layers.Dense(4, activation="softmax", kernel_regularizer=regularizers.l2(1e-2))],
                     name="tiny_cnn").save(folder / "good.keras")

    @keras.saving.register_keras_serializable(package="l2compare_cli_test")
    class Doubler(layers.Layer):
        def call(self, x):
            return 2 * x

    try:
        keras.Sequential([keras.Input((4,)), Doubler(), layers.Dense(2)], name="custom").save(folder / "custom.keras")
    finally:
        keras.saving.get_custom_objects().pop("l2compare_cli_test>Doubler", None)
    (folder / "notes.keras").write_text("not a model")
    rng = np.random.default_rng(0)
    np.savez(folder / "good.npz", x=rng.random((24, 8, 8, 1)), y=rng.integers(0, 4, 24))
    np.savez(folder / "wrong.npz", x=rng.random((24, 8, 9, 1)), y=rng.integers(0, 4, 24))
    np.savez(folder / "no_y.npz", x=rng.random((24, 8, 8, 1)))
    return folder


def _one_line_error(capsys, message):
    err = capsys.readouterr().err
    assert err.startswith("l2compare: error: ") and message in err, err
    assert err.count("\n") == 1, f"expected one line, got: {err!r}"


def test_port_writes_the_file_and_its_weights(keras_files, tmp_path, capsys):
    out = tmp_path / "model_torch.py"
    assert cli.main(["port", str(keras_files / "good.keras"), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    weights = tmp_path / "model_torch_weights.pt"
    assert sorted(os.listdir(tmp_path)) == ["model_torch.py", "model_torch_weights.pt"]
    assert f"wrote {out}" in printed and f"wrote {weights}" in printed
    assert "ported 'tiny_cnn': 4 layers (Conv2D, Dense, Flatten, MaxPooling2D); 2 regularized tensors" in printed
    assert "def l2_penalty(model)" in out.read_text()


@pytest.mark.parametrize("name,out,message", [
    ("custom.keras", "m.py", "unknown layer 'Doubler'"),
    ("notes.keras", "m.py", "not a .keras file (not a zip archive"),
    ("missing.keras", "m.py", "missing.keras: no such file"),
    ("good.keras", "m.txt", "the port is a Python file"),
    ("good.keras", "nowhere/m.py", "folder"),
])
def test_port_refusal_is_one_line_and_writes_nothing(keras_files, tmp_path, capsys, name, out, message):
    assert cli.main(["port", str(keras_files / name), "-o", str(tmp_path / out)]) == 2
    _one_line_error(capsys, message)
    assert os.listdir(tmp_path) == []


def test_port_refuses_a_layer_the_porter_cannot_carry(tmp_path, capsys):
    import keras
    from keras import layers

    path = tmp_path / "constrained.keras"
    keras.Sequential([keras.Input((3,)), layers.Dense(2, kernel_constraint="non_neg")], name="c").save(path)
    assert cli.main(["port", str(path), "-o", str(tmp_path / "m.py")]) == 2
    _one_line_error(capsys, "kernel_constraint")
    assert os.listdir(tmp_path) == ["constrained.keras"]


def test_verify_prints_the_table_and_writes_report_and_records(keras_files, tmp_path, capsys, monkeypatch):
    import json

    monkeypatch.chdir(tmp_path)
    records = tmp_path / "verify.jsonl"
    argv = ["verify", str(keras_files / "good.keras"), "--steps", "3", "--optimizer", "momentum",
            "--data", f"npz:{keras_files / 'good.npz'}", "--records", str(records)]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert re.search(r"float64 +penalty +exact", out) and re.search(r"float32 +coupled", out), out
    report = tmp_path / "verify_good.md"
    assert f"wrote {report.resolve()}" in out and report.read_text().startswith("# verify: `tiny_cnn`")
    lines = [json.loads(line) for line in records.read_text().splitlines()]
    assert [(r["dtype"], r["recipe"]) for r in lines][:3] == [("float64", r) for r in ("penalty", "coupled", "stock")]
    assert len(lines) == 6 and all(r["steps"] == 3 and r["data"] == "given" for r in lines)
    assert cli.main(argv + ["--report", str(tmp_path / "again.md")]) == 0   # records are appended
    assert len(records.read_text().splitlines()) == 12 and (tmp_path / "again.md").exists()


@pytest.mark.parametrize("args,message", [
    (["missing.keras"], "missing.keras: no such file"),
    (["notes.keras"], "not a .keras file"),
    (["custom.keras"], "unknown layer 'Doubler' (l2compare_cli_test>Doubler): a custom layer cannot be ported"),
    (["good.keras", "--data", "npz:WRONG"], "data x has shape (24, 8, 9, 1); the model 'tiny_cnn' takes (N, 8, 8, 1)"),
    (["good.keras", "--data", "npz:NO_Y"], "no array y"),
    (["good.keras", "--data", "good.npz"], "--data takes npz:PATH"),
    (["good.keras", "--data", "npz:/nonexistent.npz"], "--data /nonexistent.npz: no such file"),
    (["good.keras", "--steps", "0"], "--steps: expected a whole number >= 1, got 0"),
    (["good.keras", "--batch-size", "x"], "--batch-size: expected a whole number >= 1, got 'x'"),
    (["good.keras", "--optimizer", "rmsprop"], "invalid choice: 'rmsprop'"),
    (["good.keras", "--report", "/nonexistent/r.md"], "--report /nonexistent/r.md: folder /nonexistent does not exist"),
])
def test_verify_bad_input_is_one_line_exit_2_and_writes_nothing(keras_files, tmp_path, capsys, monkeypatch, args,
                                                                message):
    monkeypatch.chdir(tmp_path)
    model, *rest = args
    rest = [a.replace("WRONG", str(keras_files / "wrong.npz")).replace("NO_Y", str(keras_files / "no_y.npz"))
            for a in rest]
    assert cli.main(["verify", str(keras_files / model), *rest, "--records", str(tmp_path / "r.jsonl")]) == 2
    _one_line_error(capsys, message)
    assert os.listdir(tmp_path) == []


def test_verify_optimizers_are_the_runners():
    from l2compare import cli_port
    from l2compare.porter.verify.runner import OPTIMIZERS

    assert cli_port.VERIFY_OPTIMIZERS == OPTIMIZERS


def test_console_script_verify_error_has_no_traceback(tmp_path):
    (tmp_path / "m.keras").write_text("text")
    proc = subprocess.run([sys.executable, "-m", "l2compare.cli", "verify", str(tmp_path / "m.keras")],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == "" and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("l2compare: error: ") and proc.stderr.count("\n") == 1, proc.stderr  # no TF log lines
    assert os.listdir(tmp_path) == ["m.keras"]


def test_compare_frameworks_picks_the_columns(monkeypatch, tmp_path):
    from l2compare import pipeline

    seen = {}
    monkeypatch.setattr(pipeline, "compare", lambda specs, out, **kw: seen.setdefault("specs", specs) and 0)
    argv = ["compare", "--frameworks", "keras_jax,keras_torch,torch", "--recipes", "penalty,coupled",
            "--out", str(tmp_path)]
    assert cli.main(argv) == 0
    assert [(s.framework, s.regularization) for s in seen["specs"]] == [
        ("keras_jax", "l2"), ("keras_torch", "l2"), ("torch", "penalty"), ("torch", "coupled")]


def test_compare_refuses_an_unknown_framework_column(tmp_path, capsys):
    assert cli.main(["compare", "--frameworks", "keras,mxnet", "--out", str(tmp_path)]) == 2
    _one_line_error(capsys, "--frameworks: unknown framework column 'mxnet'; allowed: keras, keras_jax, keras_torch, torch")


def test_run_frameworks_picks_the_columns_of_every_experiment(monkeypatch, tmp_path):
    from l2compare import pipeline

    seen = {}
    monkeypatch.setattr(pipeline, "run_and_report", lambda names, settings, out, **kw: seen.update(
        names=names, settings=settings) or 0)
    assert cli.main(["run", "article", "--frameworks", "keras_torch,torch", "--out", str(tmp_path)]) == 0
    specs = experiments.EXPERIMENTS["article"][1](seen["settings"])
    assert {s.framework for s in specs} == {"keras_torch", "torch"}
    assert cli.main(["run", "article", "--out", str(tmp_path)]) == 0   # default: every registered column
    assert {s.framework for s in experiments.article(seen["settings"])} == {"keras", "keras_jax", "keras_torch", "torch"}


@pytest.mark.parametrize("command", [["run", "article"], ["bench"]])
def test_run_and_bench_refuse_an_unknown_framework_column(command, tmp_path, capsys):
    assert cli.main([*command, "--frameworks", "keras,tf", "--out", str(tmp_path)]) == 2
    _one_line_error(capsys, "--frameworks: unknown framework column 'tf'; allowed: keras, keras_jax, keras_torch, torch")
