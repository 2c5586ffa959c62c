"""The CLI: a user mistake gets one line on stderr and exit code 2, never a traceback."""
import os
import subprocess
import sys

import pytest

from l2compare import cli


@pytest.mark.parametrize("argv,message", [
    (["run", "articel"], "unknown experiment 'articel'; allowed: article, recipes, sweep, parity, all"),
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
    code = ("import importlib, pkgutil, sys, reports, l2compare.cli, l2compare.pipeline, engine.workers, "
            "engine.experiments, engine.bench, parity.grid; "
            "[importlib.import_module(m.name) for m in pkgutil.iter_modules(reports.__path__, 'reports.')]; "
            "print(sorted(m for m in ('torch', 'tensorflow', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
