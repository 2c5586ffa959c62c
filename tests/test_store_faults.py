"""Faults during a write (issue 22): a full disk or an I/O error mid-append, and while writing the tables,
plots and README headline. The run ends with one line and exit 2, the store keeps every complete record and
no partial line, the next run resumes; a report file is replaced whole or not at all."""
from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

import store_fakes
from l2compare import cli, pipeline
from l2compare.core import columns
from l2compare.engine.files import FileFault
from l2compare.engine.store import RunStore
from report_records import keys, two_seed_article

FULL = OSError(errno.ENOSPC, "No space left on device")
RESUMES = ("every record stored before is kept; fix the cause (free disk space, say) and run the same command "
           "again: it resumes")


def rec(key: str, **fields) -> dict:
    return {"key": key, **fields}


def name_of(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


@pytest.fixture
def store(tmp_path) -> RunStore:
    store = RunStore(tmp_path / "runs.jsonl")
    store.append(rec("a", payload="x" * 100))
    store.append(rec("b", payload="x" * 100))
    return store


def short_write_then(error: OSError, monkeypatch) -> None:
    """The next os.write writes 10 bytes; the one after raises ``error`` (a disk filling up mid-line)."""
    write, calls = os.write, []

    def failing(fd, data):
        if calls:
            raise error
        calls.append(fd)
        return write(fd, bytes(data)[:10])

    monkeypatch.setattr(os, "write", failing)


def test_a_full_disk_mid_append_leaves_only_complete_records(store, monkeypatch):
    before = store.path.read_bytes()
    with monkeypatch.context() as m:
        short_write_then(FULL, m)
        with pytest.raises(FileFault) as info:
            store.append(rec("c", payload="x" * 100))
    assert info.value.errno == errno.ENOSPC
    assert str(info.value) == f"cannot append to {store.path} (No space left on device); {RESUMES}"
    assert store.path.read_bytes() == before, "the partial line was taken back"
    store.append(rec("c"))
    assert [r["key"] for r in RunStore(store.path).records()] == ["a", "b", "c"]


def test_an_io_error_at_fsync_takes_the_line_back(store, monkeypatch):
    before = store.path.read_bytes()
    with monkeypatch.context() as m:
        m.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.EIO, "Input/output error")))
        with pytest.raises(FileFault, match=r"runs\.jsonl \(Input/output error\); every record stored before"):
            store.append(rec("c"))
    assert store.path.read_bytes() == before


def test_when_the_take_back_fails_too_the_torn_tail_is_dropped_on_the_next_read(store, monkeypatch):
    before = store.path.read_bytes()
    with monkeypatch.context() as m:
        short_write_then(FULL, m)
        m.setattr(os, "ftruncate", lambda fd, size: (_ for _ in ()).throw(OSError(errno.EIO, "Input/output error")))
        with pytest.raises(FileFault):
            store.append(rec("c", payload="x" * 100))
    assert store.path.read_bytes().startswith(before) and len(store.path.read_bytes()) == len(before) + 10
    with pytest.warns(UserWarning, match="torn last line"):
        assert RunStore(store.path).resume(["a", "b", "c"])[1] == ["c"]
    with pytest.warns(UserWarning, match="removing a torn last line"):
        RunStore(store.path).append(rec("c"))
    assert [r["key"] for r in RunStore(store.path).records()] == ["a", "b", "c"]


def test_a_read_only_file_system_is_one_line(store, monkeypatch):
    open_ = os.open

    def read_only(path, flags, *args, **kwargs):
        if flags & (os.O_RDWR | os.O_WRONLY):
            raise OSError(errno.EROFS, "Read-only file system")
        return open_(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(FileFault, match=r"cannot append to .*runs\.jsonl \(Read-only file system\)"):
        store.append(rec("c"))


@pytest.fixture
def fake_column(monkeypatch):
    store_fakes.register()
    monkeypatch.setattr(pipeline, "report", lambda out: [])  # fake records hold nothing to tabulate
    yield store_fakes.NAME
    columns.unregister(store_fakes.NAME)


def test_a_run_that_fills_the_disk_ends_in_one_line_and_the_next_one_resumes(fake_column, tmp_path, monkeypatch,
                                                                             capsys):
    out = tmp_path / "results"
    argv = ["run", "article", "--frameworks", fake_column, "--seeds", "1", "--epochs", "1", "--no-progress",
            "--out", str(out)]
    write, appended = os.write, []

    def full_after_two(fd, data):
        if name_of(fd).endswith("runs.jsonl"):
            if len(appended) == 2:
                raise FULL
            appended.append(fd)
        return write(fd, data)

    with monkeypatch.context() as m:
        m.setattr(os, "write", full_after_two)
        assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err == f"l2compare: error: cannot append to {out / 'runs.jsonl'} (No space left on device); {RESUMES}\n"
    stored = [json.loads(line)["key"] for line in (out / "runs.jsonl").read_text().splitlines()]
    assert len(stored) == 2
    assert cli.main(argv) == 0
    assert "l2compare: 4 runs ran, 2 reused" in capsys.readouterr().out
    keys_now = [json.loads(line)["key"] for line in (out / "runs.jsonl").read_text().splitlines()]
    assert keys_now[:2] == stored and len(set(keys_now)) == len(keys_now) == 6


@pytest.fixture
def results(tmp_path) -> Path:
    """A results folder with records to tabulate, its old tables, and the project README above it."""
    out = tmp_path / "results"
    out.mkdir()
    runs = two_seed_article()
    RunStore(out / "runs.jsonl").replace(runs)
    (out / "experiments.json").write_text(json.dumps({"article": sorted(keys(runs))}))
    (out / "article.md").write_text("old table\n")
    (tmp_path / "README.md").write_text(f"intro\n{pipeline.HEADLINE[0]}\nold headline\n{pipeline.HEADLINE[1]}\n")
    return out


@pytest.mark.parametrize("victim", ["article.md", "norm_vs_epoch.png", "../README.md"])
def test_a_report_file_that_cannot_be_written_keeps_its_old_content(results, monkeypatch, capsys, victim):
    fsync, records = os.fsync, (results / "runs.jsonl").read_bytes()
    old = {p: p.read_bytes() for p in (results / "article.md", results.parent / "README.md")}

    path = (results / victim).resolve()

    def full_for_victim(fd):
        name = Path(name_of(fd))
        if name.parent == path.parent and name.name.startswith(f".tmp.{path.name}."):
            raise FULL
        fsync(fd)

    monkeypatch.setattr(os, "fsync", full_for_victim)
    assert cli.main(["report", "--out", str(results)]) == 2
    assert capsys.readouterr().err == (
        f"l2compare: error: cannot write {path} (No space left on device); every record is kept: once fixed, "
        f"`l2compare report --out {results}` writes the tables again\n")
    assert (results / "runs.jsonl").read_bytes() == records
    if path in old:
        assert path.read_bytes() == old[path]
    else:
        assert not path.exists()
    assert not [p for p in (*results.iterdir(), *results.parent.iterdir()) if p.name.startswith(".tmp")]
    monkeypatch.setattr(os, "fsync", fsync)
    assert cli.main(["report", "--out", str(results)]) == 0  # once fixed, everything is written
    assert (results / "article.md").read_text() != "old table\n"
    assert "old headline" not in (results.parent / "README.md").read_text()
