"""Tests for l2compare.engine.store: atomic appends, torn lines, replace, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest

from l2compare.engine.store import RunStore

REPO_ROOT = Path(__file__).resolve().parents[1]


def rec(key: str, **fields) -> dict:
    return {"key": key, **fields}


def line(record: dict) -> str:
    return json.dumps(record, sort_keys=True) + "\n"


def lines_of(path: Path) -> list[dict]:
    """Strict reading: every line must be a complete JSON object."""
    text = path.read_text()
    assert text.endswith("\n"), "file must end with a newline"
    return [json.loads(s) for s in text.splitlines()]


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "results" / "runs.jsonl")


# ------------------------------------------------------------------ basics


def test_empty_store(store):
    assert store.records() == []
    assert store.keys() == set()
    assert store.resume(["a"]) == ({}, ["a"])
    assert not store.path.exists()  # reading never creates the file


def test_append_get_keys(store):
    store.append(rec("b", acc=0.5, history=[1.0, None]))
    store.append(rec("a", acc=0.25))
    assert store.path.read_text() == line(rec("b", acc=0.5, history=[1.0, None])) + line(rec("a", acc=0.25))
    assert [r["key"] for r in store.records()] == ["b", "a"]  # file order
    assert store.keys() == {"a", "b"}
    assert store.resume(["b", "c"]) == ({"b": {"key": "b", "acc": 0.5, "history": [1.0, None]}}, ["c"])
    assert RunStore(store.path).keys() == {"a", "b"}  # nothing held in memory


def test_duplicate_key_refused(store):
    store.append(rec("a", v=1))
    with pytest.raises(ValueError, match="'a' is already stored"):
        store.append(rec("a", v=2))
    assert store.path.read_text() == line(rec("a", v=1))


@pytest.mark.parametrize("bad", [{"v": 1}, {"key": 3}, {"key": ""}, ["key", "a"]])
def test_record_without_string_key_refused(store, bad):
    with pytest.raises(ValueError, match="non-empty string 'key'"):
        store.append(bad)
    assert not store.path.exists()


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_nan_refused_before_touching_file(store, value):
    store.append(rec("a"))
    with pytest.raises(ValueError, match="record 'b'.*replace NaN/infinity with None"):
        store.append(rec("b", loss=[0.1, value]))
    assert store.path.read_text() == line(rec("a"))


def test_resume_keeps_order_and_drops_duplicates(store):
    store.append(rec("b"))
    store.append(rec("e"))
    assert store.resume(["c", "b", "a", "c", "d", "a"]) == ({"b": rec("b")}, ["c", "a", "d"])
    assert store.resume([]) == ({}, [])


def test_resume_reads_the_file_once(store, monkeypatch):
    for key in "abc":
        store.append(rec(key))
    reads = []
    original = RunStore._read
    monkeypatch.setattr(RunStore, "_read", lambda self: reads.append(1) or original(self))
    assert store.resume([f"k{i}" for i in range(100)] + ["a"])[0] == {"a": rec("a")}
    assert len(reads) == 1
    reads.clear()
    store.resume(["a", "z"], force=True)
    assert len(reads) == 1


def test_resume_with_force_forgets_those_keys_only(store):
    for key in "abc":
        store.append(rec(key, v=1))
    assert store.resume(["b", "x", "b"], force=True) == ({}, ["b", "x"])
    assert store.path.read_text() == line(rec("a", v=1)) + line(rec("c", v=1))
    inode = store.path.stat().st_ino
    assert store.resume(["x"], force=True) == ({}, ["x"])
    assert store.path.stat().st_ino == inode, "nothing to forget: the file is not rewritten"
    store.append(rec("b", v=2))  # the rerun is stored as usual
    assert store.resume(["b"]) == ({"b": rec("b", v=2)}, [])


# ------------------------------------------------------------------ torn lines


def test_torn_last_line_ignored_then_repaired(store):
    store.path.parent.mkdir(parents=True)
    store.path.write_text(line(rec("a")) + line(rec("b")) + '{"key": "c", "acc"')
    with pytest.warns(UserWarning, match=r"runs\.jsonl: ignoring a torn last line \(18 bytes"):
        assert [r["key"] for r in store.records()] == ["a", "b"]
    with pytest.warns(UserWarning, match="torn"):
        assert store.resume(["a", "b", "c"])[1] == ["c"]
    with pytest.warns(UserWarning, match="removing a torn last line"):
        store.append(rec("c", acc=1.0))
    assert store.path.read_text() == line(rec("a")) + line(rec("b")) + line(rec("c", acc=1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # repaired: loading is silent again
        assert store.keys() == {"a", "b", "c"}


def test_torn_line_with_newline_is_also_repaired(store):
    store.path.parent.mkdir(parents=True)
    store.path.write_text(line(rec("a")) + '{"key": "b", \n')
    with pytest.warns(UserWarning, match="torn"):
        assert store.keys() == {"a"}
    with pytest.warns(UserWarning, match="removing"):
        store.append(rec("b"))
    assert store.path.read_text() == line(rec("a")) + line(rec("b"))


def test_valid_last_record_without_newline_is_kept(store):
    # Not torn: a hand edit that dropped the final newline. Keep the record.
    store.path.parent.mkdir(parents=True)
    store.path.write_text(line(rec("a")) + line(rec("b")).rstrip("\n"))
    assert store.keys() == {"a", "b"}
    store.append(rec("c"))
    assert store.path.read_text() == line(rec("a")) + line(rec("b")) + line(rec("c"))


def test_invalid_line_in_the_middle_is_an_error(store):
    store.path.parent.mkdir(parents=True)
    store.path.write_text(line(rec("a")) + "garbage\n" + line(rec("b")))
    with pytest.raises(ValueError, match=r"invalid record at byte 13 \(not the last line"):
        store.records()
    with pytest.raises(ValueError, match="invalid record"):
        store.append(rec("c"))
    assert store.path.read_text() == line(rec("a")) + "garbage\n" + line(rec("b"))


def test_duplicated_key_in_file_first_wins(store):
    store.path.parent.mkdir(parents=True)
    store.path.write_text(line(rec("a", v=1)) + line(rec("b")) + line(rec("a", v=2)))
    with pytest.warns(UserWarning, match="duplicate key 'a'; keeping the first"):
        records = store.records()
    assert records == [rec("a", v=1), rec("b")]
    with pytest.warns(UserWarning, match="duplicate key 'a'"):
        assert store.resume(["a"]) == ({"a": rec("a", v=1)}, [])


# ------------------------------------------------------------------ replace


def test_replace_rewrites_whole_file(store):
    store.append(rec("a", v=1))
    store.append(rec("b", v=1))
    store.replace([rec("b", v=2), rec("c", v=2)])
    assert store.path.read_text() == line(rec("b", v=2)) + line(rec("c", v=2))
    assert os.listdir(store.path.parent) == ["runs.jsonl"]  # no temp file left
    assert store.path.stat().st_mode & 0o777 == 0o644
    store.append(rec("a", v=3))  # appends keep working on the new file
    assert [r["key"] for r in store.records()] == ["b", "c", "a"]


def test_replace_creates_missing_file(store):
    store.replace([rec("a")])
    assert store.path.read_text() == line(rec("a"))
    store.replace([])
    assert store.path.read_text() == ""


@pytest.mark.parametrize(
    "records, problem",
    [
        ([rec("x"), rec("y"), rec("x")], r"duplicate keys \['x'\]"),
        ([rec("x", v=float("nan"))], "NaN"),
        ([{"v": 1}], "string 'key'"),
    ],
)
def test_replace_validates_before_touching_file(store, records, problem):
    store.append(rec("a"))
    with pytest.raises(ValueError, match=problem):
        store.replace(records)
    assert store.path.read_text() == line(rec("a"))
    assert os.listdir(store.path.parent) == ["runs.jsonl"]


def test_replace_is_atomic_when_rename_fails(store, monkeypatch):
    store.append(rec("a"))

    def failing_replace(src, dst):
        # At this point the new content must be complete in the temp file.
        assert Path(src).read_text() == line(rec("z"))
        raise OSError("simulated crash before rename")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="simulated crash"):
        store.replace([rec("z")])
    assert store.path.read_text() == line(rec("a"))  # old content intact
    assert os.listdir(store.path.parent) == ["runs.jsonl"]


# ------------------------------------------------------------------ processes


def run_python(code: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


APPEND_LOOP = """
    import sys, time
    from l2compare.engine.store import RunStore
    store = RunStore(sys.argv[1])
    for i in range(int(sys.argv[2])):
        try:
            store.append({"key": f"k{i:04d}", "i": i, "payload": "x" * 200})
        except ValueError:  # another writer stored it first
            pass
        time.sleep(float(sys.argv[3]))
"""


def count_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_resume_after_sigkill(store):
    total = 300
    all_keys = [f"k{i:04d}" for i in range(total)]
    child = run_python(APPEND_LOOP, str(store.path), str(total), "0.002")
    deadline = time.monotonic() + 15
    while count_lines(store.path) < 30:
        assert child.poll() is None, child.communicate()[1]
        assert time.monotonic() < deadline, "child made no progress"
        time.sleep(0.001)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL

    # After the kill: every line is complete JSON, no key twice, a prefix of the sweep.
    stored = [r["key"] for r in lines_of(store.path)]
    assert 30 <= len(stored) < total, "the kill must land mid-run"
    assert stored == all_keys[: len(stored)]

    # The worst a kill mid-write can leave: a torn tail. Resume must cope.
    with store.path.open("a") as f:
        f.write('{"i": 999, "key": "k0299", "pay')
    with pytest.warns(UserWarning, match="torn"):
        todo = store.resume(all_keys)[1]
    assert todo == all_keys[len(stored):]
    with pytest.warns(UserWarning, match="removing a torn last line"):
        for key in todo:
            store.append({"key": key, "i": int(key[1:]), "payload": "x" * 200})
    assert store.resume(all_keys)[1] == []

    final = lines_of(store.path)
    assert [r["key"] for r in final] == all_keys  # exactly the full set, once each, in order
    assert all(r["i"] == int(r["key"][1:]) for r in final)


def test_concurrent_writers_store_each_key_once(store):
    # Four processes race to append the same 40 keys: the lock makes the
    # duplicate check and the write one step, so each key lands exactly once.
    store.path.parent.mkdir(parents=True)
    children = [run_python(APPEND_LOOP, str(store.path), "40", "0") for _ in range(4)]
    for child in children:
        _, err = child.communicate(timeout=30)
        assert child.returncode == 0, err
    keys = [r["key"] for r in lines_of(store.path)]
    assert sorted(keys) == [f"k{i:04d}" for i in range(40)]
