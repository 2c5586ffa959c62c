"""A damaged store (issue 22): one line naming the file, the line and what to do, exit 2, for every command
that reads it; ``l2compare store check`` lists what is wrong, ``l2compare store repair`` moves the damaged
lines to PATH.damaged and keeps every valid record, atomically."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from l2compare import cli
from l2compare.core.spec import code_fingerprint
from l2compare.engine.store import RunStore

ROOT = Path(__file__).resolve().parents[1]


def line(key: str, **fields) -> str:
    return json.dumps({"key": key, **fields}, sort_keys=True) + "\n"


@pytest.fixture
def damaged(tmp_path) -> Path:
    """A results folder whose runs.jsonl has a damaged middle line (2), a duplicate key written by hand
    (4, of line 1) and a record from another code version (5)."""
    code = code_fingerprint()
    (tmp_path / "runs.jsonl").write_text(line("a", code=code) + "{not json\n" + line("b", code=code)
                                         + line("a", code=code, copy=True) + line("c", code="0ld0ld0ld0ld")
                                         + line("d", code=code))
    (tmp_path / "timings.jsonl").write_text(line("t1"))
    return tmp_path


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_check_lists_each_finding_and_what_it_means(damaged, capsys):
    (damaged / ".tmp.runs.jsonl.123.abcd.jsonl").write_text("{half")  # a writer's leftover: no store
    assert cli.main(["store", "check", str(damaged)]) == 1
    out = capsys.readouterr().out.splitlines()
    runs = str(damaged / "runs.jsonl")
    assert out[0] == f"{runs}: 4 records, to repair (`l2compare store repair`)"
    assert out[1].startswith('  line 2: damaged, not a JSON record with a "key" (starts "{not json"): every command')
    assert out[2].startswith("  line 4: duplicate of key 'a' (first at line 1;")
    assert "readers keep the first; repair moves this copy to runs.jsonl.damaged" in out[2]
    assert out[3].startswith(f"  line 5 (1 records): made by other code (0ld0ld0ld0ld; this checkout's is "
                             f"{code_fingerprint()}): kept, but never reused by a run nor shown in a table")
    assert out[4] == f"{damaged / 'timings.jsonl'}: 1 records, nothing to repair"
    assert len(out) == 5


def test_repair_moves_damaged_lines_aside_and_keeps_every_record(damaged, capsys):
    path = damaged / "runs.jsonl"
    before, inode = path.read_text().splitlines(True), path.stat().st_ino
    assert cli.main(["store", "repair", str(path)]) == 0
    assert capsys.readouterr().out.startswith(f"{path}: moved 2 lines to {path}.damaged; kept 4 records\n")
    assert path.read_text() == "".join(before[i] for i in (0, 2, 4, 5))  # byte for byte, other code's kept
    assert (damaged / "runs.jsonl.damaged").read_text() == before[1] + before[3]
    assert path.stat().st_ino != inode, "a new file renamed over the old one"
    assert sorted(p.name for p in damaged.iterdir()) == ["runs.jsonl", "runs.jsonl.damaged", "timings.jsonl"]
    assert [r["key"] for r in RunStore(path).records()] == ["a", "b", "c", "d"]
    assert cli.main(["store", "check", str(path)]) == 0  # the record of other code is no damage
    path.write_text(path.read_text() + "{again\n" + line("e"))
    assert cli.main(["store", "repair", str(path)]) == 0
    assert (damaged / "runs.jsonl.damaged").read_text() == before[1] + before[3] + "{again\n"  # appended, kept


def test_repair_that_fails_changes_nothing_and_loses_nothing(damaged, capsys, monkeypatch):
    path = damaged / "runs.jsonl"
    before = path.read_text()

    def no_rename(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_rename)
    assert cli.main(["store", "repair", str(path)]) == 2
    assert one_error_line(capsys) == (f"l2compare: error: cannot repair {path} (No space left on device); "
                                      f"{path} is unchanged\n")
    assert path.read_text() == before
    assert not [p for p in damaged.iterdir() if p.name.startswith(".tmp")]


def test_a_torn_last_line_is_listed_and_repair_moves_it(tmp_path, capsys):
    path = tmp_path / "runs.jsonl"
    path.write_text(line("a") + '{"key": "b", "acc')
    assert cli.main(["store", "check", str(path)]) == 1
    assert "line 2: torn last line (an interrupted write)" in capsys.readouterr().out
    assert cli.main(["store", "repair", str(path)]) == 0
    assert path.read_text() == line("a") and (tmp_path / "runs.jsonl.damaged").read_text() == '{"key": "b", "acc\n'


@pytest.mark.parametrize("argv", [
    ["report", "--out", "{out}"],
    ["plan", "article", "--frameworks", "torch", "--out", "{out}"],
    ["run", "article", "--frameworks", "torch", "--seeds", "1", "--epochs", "1", "--no-progress", "--out", "{out}"],
    ["compare", "--frameworks", "torch", "--epochs", "1", "--no-progress", "--out", "{out}"],
])
def test_every_command_that_reads_a_damaged_store_says_one_line(damaged, capsys, monkeypatch, argv):
    from l2compare.engine import workers

    monkeypatch.setattr(workers, "schedule", lambda *a, **k: pytest.fail("ran despite a damaged store"))
    (damaged / "experiments.json").write_text(json.dumps({"article": ["a", "b"]}))
    assert cli.main([a.replace("{out}", str(damaged)) for a in argv]) == 2
    runs = damaged / "runs.jsonl"
    byte = len(runs.read_text().splitlines(True)[0])
    assert one_error_line(capsys) == (
        f"l2compare: error: {runs}, line 2: invalid record at byte {byte} (not the last line, so not a torn write); "
        f"`l2compare store check {runs}` lists the damaged lines, `l2compare store repair {runs}` moves them to "
        f"runs.jsonl.damaged and keeps every valid record\n")


def test_console_script_damaged_store_exit_2_no_traceback(damaged):
    done = subprocess.run([sys.executable, "-m", "l2compare.cli", "run", "article", "--out", str(damaged)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2
    assert done.stderr.startswith(f"l2compare: error: {damaged / 'runs.jsonl'}, line 2:")
    assert done.stderr.count("\n") == 1, done.stderr


def test_store_command_on_a_missing_path_is_one_line(tmp_path, capsys):
    assert cli.main(["store", "check", str(tmp_path / "nope")]) == 2
    assert "nope: no such file or folder" in one_error_line(capsys)
    assert cli.main(["store", "repair", str(tmp_path)]) == 2
    assert "no .jsonl store in this folder" in one_error_line(capsys)
