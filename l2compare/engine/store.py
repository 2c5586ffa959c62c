"""The run record store: ``results/runs.jsonl``, one JSON object per line.

Each record has a string field ``"key"`` (the hash of its run spec, computed by
the caller), so a sweep can be interrupted at any point and resumed: the keys
already stored are skipped (:meth:`RunStore.resume`, the one way an experiment
learns what is left to run), and each run is recorded once.

Crash safety, the reason for the details below:

- An append serializes the whole line first, then issues one ``os.write`` on
  a descriptor opened with ``O_APPEND``, under an exclusive ``flock``, then
  ``fsync``. Concurrent writers (several worker processes) never interleave.
- A process killed mid-write can at worst leave a torn last line. Loading
  ignores it with a warning; the next append truncates it first, so the file
  goes back to exactly one valid record per line.
- :meth:`RunStore.replace` (``--force`` reruns) writes a temp file in the same
  directory and ``os.replace``-s it, so readers see the old or the new file,
  never a mix.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["RunStore"]


@dataclass
class _Parsed:
    """What a scan of the file found."""

    records: list[dict] = field(default_factory=list)  # every valid record, file order
    good_end: int = 0  # byte offset just past the last valid newline-terminated line
    torn: int = 0  # bytes of a torn last line (0 if none)
    missing_newline: bool = False  # last record is valid but lacks its '\n'


class RunStore:
    """Append-only JSONL store of run records, keyed by ``record["key"]``."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunStore({str(self.path)!r})"

    # ------------------------------------------------------------------ reading

    def records(self) -> list[dict]:
        """All records in file order; for a duplicated key the first one wins."""
        parsed = self._read()
        seen: set[str] = set()
        unique = []
        for record in parsed.records:
            if record["key"] in seen:
                # Only a hand edit or a foreign writer can cause this; append refuses it.
                warnings.warn(f"{self.path}: duplicate key {record['key']!r}; keeping the first")
                continue
            seen.add(record["key"])
            unique.append(record)
        return unique

    def keys(self) -> set[str]:
        return {record["key"] for record in self._read().records}

    def resume(self, keys: Iterable[str], *, force: bool = False) -> tuple[dict[str, dict], list[str]]:
        """What a run of `keys` starts from, from one read of the file: the records already
        stored under those keys (by key), and the keys left to run (given order, each once).

        With `force`, those keys' records are dropped from the file first (one atomic rewrite)
        and all of them are left to run: the single place where ``--force`` forgets runs.
        """
        wanted = list(dict.fromkeys(keys))
        stored = {record["key"]: record for record in self.records()}
        if force:
            drop = set(wanted)
            if stored.keys() & drop:
                self.replace(r for key, r in stored.items() if key not in drop)
            return {}, wanted
        return {k: stored[k] for k in wanted if k in stored}, [k for k in wanted if k not in stored]

    def _read(self) -> _Parsed:
        """Scan the file under a shared lock (no append can be half visible)."""
        if not self.path.exists():
            return _Parsed()
        with self._locked(os.O_RDONLY, fcntl.LOCK_SH) as fd:
            parsed = _parse(_read_all(fd), self.path)
        if parsed.torn:
            warnings.warn(
                f"{self.path}: ignoring a torn last line ({parsed.torn} bytes, "
                f"a write was interrupted); the next append removes it"
            )
        return parsed

    # ------------------------------------------------------------------ writing

    def append(self, record: dict) -> None:
        """Append one record atomically; refuse a missing or already stored key.

        Raises ValueError for a record without a string "key", a key already
        stored, or a value JSON cannot represent exactly (NaN, infinity:
        sanitize them to None first).
        """
        line = _serialize(record).encode("ascii")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._locked(os.O_RDWR | os.O_APPEND | os.O_CREAT, fcntl.LOCK_EX) as fd:
            # Check and write under the same lock, so two writers cannot both
            # decide that a key is new.
            parsed = _parse(_read_all(fd), self.path)
            if any(r["key"] == record["key"] for r in parsed.records):
                raise ValueError(f"{self.path}: key {record['key']!r} is already stored")
            if parsed.torn:
                warnings.warn(
                    f"{self.path}: removing a torn last line ({parsed.torn} bytes) before appending"
                )
                os.ftruncate(fd, parsed.good_end)
            elif parsed.missing_newline:
                line = b"\n" + line  # keep the valid record, end its line
            _write_all(fd, line)
            os.fsync(fd)

    def replace(self, records: Iterable[dict]) -> None:
        """Rewrite the whole file with `records`, atomically (``--force`` reruns)."""
        lines = [_serialize(r) for r in records]  # validate everything before touching the file
        keys = [json.loads(line)["key"] for line in lines]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            raise ValueError(f"{self.path}: duplicate keys {duplicates}")
        data = "".join(lines).encode("ascii")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Temp file in the same directory: os.replace is atomic only within a
        # file system. The '.tmp' prefix is git-ignored under results/.
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".tmp.{self.path.name}.")
        try:
            _write_all(fd, data)
            os.fchmod(fd, 0o644)  # mkstemp makes 0600; results are meant to be shared
            os.fsync(fd)
            os.close(fd)
            fd = -1
            # Hold the lock on the current file so no append lands in the old
            # inode after it has been swapped out.
            with self._lock_existing():
                os.replace(tmp, self.path)
            _fsync_dir(self.path.parent)  # make the rename itself durable
        finally:
            if fd >= 0:
                os.close(fd)
            Path(tmp).unlink(missing_ok=True)

    # ------------------------------------------------------------------ locking

    @contextlib.contextmanager
    def _locked(self, flags: int, lock: int) -> Iterator[int]:
        """Open and flock the store; retry if it was replaced while we waited.

        `replace` swaps in a new inode: a lock on the old one protects nothing,
        so after locking, check that the path still names the file we hold.
        """
        while True:
            fd = os.open(self.path, flags, 0o644)
            try:
                fcntl.flock(fd, lock)
                if _same_file(fd, self.path):
                    yield fd
                    return
            finally:
                os.close(fd)  # closing releases the flock

    @contextlib.contextmanager
    def _lock_existing(self) -> Iterator[None]:
        if not self.path.exists():
            yield
            return
        with self._locked(os.O_RDONLY, fcntl.LOCK_EX):
            yield


# ---------------------------------------------------------------------- helpers


def _serialize(record: dict) -> str:
    """One line of JSON, newline included; ValueError if it cannot be stored."""
    if not isinstance(record, dict) or not isinstance(record.get("key"), str) or not record["key"]:
        raise ValueError("a run record must be a dict with a non-empty string 'key'")
    try:
        # allow_nan=False: NaN/Infinity are not JSON, other tools could not read them.
        # ensure_ascii (default): the line is pure ASCII, so a torn write can
        # never split a multi-byte character.
        return json.dumps(record, sort_keys=True, allow_nan=False) + "\n"
    except ValueError as exc:
        raise ValueError(
            f"record {record['key']!r}: {exc}; replace NaN/infinity with None"
        ) from exc


def _parse(buf: bytes, path: Path) -> _Parsed:
    """Parse the file's bytes. Only the last line may be invalid (torn)."""
    parsed = _Parsed()
    *complete, tail = buf.split(b"\n")  # tail: bytes after the last '\n'
    offset = 0
    for i, line in enumerate(complete):
        record = _decode(line)
        if record is None and line.strip():
            if i == len(complete) - 1 and not tail:
                parsed.torn = len(line) + 1  # invalid last line, newline included
                return parsed
            raise ValueError(
                f"{path}: invalid record at byte {offset} (not the last line, so not "
                f"a torn write); fix or remove that line by hand"
            )
        if record is not None:
            parsed.records.append(record)
        offset += len(line) + 1
        parsed.good_end = offset
    if tail:
        record = _decode(tail)
        if record is None:
            parsed.torn = len(tail)
        else:
            parsed.records.append(record)
            parsed.missing_newline = True
    return parsed


def _decode(line: bytes) -> dict | None:
    """A record, or None if the line is not a JSON object with a string key."""
    try:
        record = json.loads(line)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None
    if isinstance(record, dict) and isinstance(record.get("key"), str):
        return record
    return None


def _read_all(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    return os.pread(fd, size, 0) if size else b""


def _write_all(fd: int, data: bytes) -> None:
    # One write in practice; the loop only guards against a short write (e.g.
    # a nearly full disk). We hold the lock, so the pieces stay contiguous.
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    fst = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (fst.st_dev, fst.st_ino)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
