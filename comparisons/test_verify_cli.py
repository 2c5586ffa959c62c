"""``l2compare verify`` as a user meets it: the table and at most five notes on the terminal, the report with its
plot beside it, and each bad input as one line, exit code 2 and nothing written."""
import os
import re

import numpy as np
import pytest

from comparisons.clicheck import assert_one_line_error, save_tiny_bn
from l2compare import cli
from l2compare.reports.verify_report import TERMINAL_NOTES


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny CNN with L2 and a BatchNorm (good.keras), its data, and bad data of each kind."""
    folder = tmp_path_factory.mktemp("verify_cli")
    save_tiny_bn(folder / "good.keras")
    rng = np.random.default_rng(0)
    x, y = rng.random((16, 6, 6, 1)), rng.integers(0, 4, 16)
    np.savez(folder / "good.npz", x=x, y=y)
    np.savez(folder / "nan.npz", x=np.where(np.arange(16)[:, None, None, None] == 2, np.nan, x), y=y)
    np.savez(folder / "inf.npz", x=x, y=np.where(np.arange(16) == 0, np.inf, y.astype(float)))
    np.savez(folder / "labels.npz", x=x, y=np.where(np.arange(16) == 5, 4, y))
    return folder


@pytest.mark.parametrize("args,message", [
    (["--data", "npz:nan.npz"], "array x holds 36 NaN or infinite value(s); verify needs finite numbers"),
    (["--data", "npz:inf.npz"], "array y holds 1 NaN or infinite value(s)"),
    (["--data", "npz:labels.npz"], "data y holds class 4; the model has 4 classes (0 to 3)"),
    (["--data", "npz:good.npz", "--batch-size", "17"], "--batch-size 17 is larger than the data (16 samples in"),
    (["--steps", "0"], "--steps: expected a whole number >= 1, got 0"),
    (["--dtypes", "float16"], "--dtypes takes a comma-separated list of float64, float32; got 'float16'"),
    (["--recipes", "penalty,decoupled"], "--recipes takes a comma-separated list of penalty, coupled, stock"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(files, tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    args = [a.replace("npz:", f"npz:{files}/") for a in args]
    assert cli.main(["verify", str(files / "good.keras"), *args, "--records", str(tmp_path / "r.jsonl")]) == 2
    assert_one_line_error(capsys, message)
    assert os.listdir(tmp_path) == []


def test_the_terminal_shows_the_table_and_few_notes_the_report_the_rest(files, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["verify", str(files / "good.keras"), "--steps", "2", "--optimizer", "adam", "--data",
            f"npz:{files / 'good.npz'}", "--dtypes", "float32", "--recipes", "penalty,stock", "--plot"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert re.search(r"float32 +penalty +exact", out) and re.search(r"float32 +stock +(close|wrong)", out), out
    assert "float64" not in out.split("note:")[0]   # --dtypes float32: the float32 rows only
    notes = [line for line in out.splitlines() if line.startswith("note: ")]
    assert 1 <= len(notes) <= TERMINAL_NOTES and all(len(n) <= 170 for n in notes), notes
    assert "trained freely |Δw|" in out   # --plot: the numbers per step
    report = (tmp_path / "verify_good.md").read_text()
    assert (tmp_path / "verify_good.png").stat().st_size > 1000 and "(verify_good.png)" in report
    assert "## How the verdict is decided" in report and "one step at a time" in report
    assert "stock torch Adam adds ε inside" in report
    assert sorted(os.listdir(tmp_path)) == ["verify_good.md", "verify_good.png"]


def test_without_optimizer_the_compiled_one_is_trained_and_a_note_shows_its_other_settings(files, tmp_path, capsys,
                                                                                          monkeypatch):
    """The file was compiled with SGD(0.05, momentum=0.8): verify trains momentum (not its default, adam) at its
    own settings, and the first note says so, on the terminal and in the report (l2compare/cli_compiled.py)."""
    import keras

    save_tiny_bn(tmp_path / "sgd.keras", keras.optimizers.SGD(learning_rate=0.05, momentum=0.8))
    monkeypatch.chdir(tmp_path)
    argv = ["verify", "sgd.keras", "--steps", "1", "--data", f"npz:{files / 'good.npz'}", "--dtypes", "float32",
            "--recipes", "penalty"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    note = ("compiled with SGD(learning_rate=0.05, momentum=0.8); verify trains momentum at learning_rate=0.01, "
            "momentum=0.9")
    assert "1 steps of batch 8, momentum," in out and f"note: {note}\n" in out, out
    assert [line for line in out.splitlines() if line.startswith("note: ")][0] == f"note: {note}"
    assert note in (tmp_path / "verify_sgd.md").read_text()
