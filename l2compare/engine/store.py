"""The run record store: ``results/runs.jsonl``, one JSON object per line.

Each record has a string field ``"key"`` (the hash of its run spec and of the code that runs it,
computed by the caller), so a sweep can be interrupted at any point and resumed: the keys already
stored are skipped (:meth:`RunStore.resume`, the one way an experiment learns what is left to run),
and each run is recorded once.

Crash safety and concurrency, the reasons for the details below:

- An append serializes the whole line first, then, under an exclusive ``flock``, reads what other
  writers added since this object last looked, and writes the line with one ``os.write`` on a
  descriptor opened with ``O_APPEND``, then ``fsync``. The check and the write are one step under
  the lock, so each key is stored exactly once, whatever the number of writers (worker results,
  two ``l2compare run`` on one folder, a local run beside a Ray driver). The lock is held for one
  small read and one write, never while a run trains: no writer waits for another's runs.
- A key that another writer stored meanwhile is the same run (the key hashes the spec and the code):
  with ``on_reused``, the stored record is kept and reported; without it, the append refuses.
- A failed write (disk full, I/O error) is taken back (the file is truncated to its size before the
  write) and reported as a :class:`~l2compare.engine.files.FileFault`: the file keeps exactly its
  complete records. A kill mid-write can at worst leave a torn last line: loading ignores it with a
  warning, and the next append truncates it first.
- A damaged line elsewhere is no torn write: reading it raises :class:`StoreDamaged`, which names the
  line; ``l2compare store repair`` (``l2compare.engine.store_repair``) moves such lines aside.
- :meth:`RunStore.replace` (``--force`` reruns) writes a temp file in the same directory and
  ``os.replace``-s it, so readers see the old or the new file, never a mix.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from l2compare.engine.files import fault, fsync_dir
from l2compare.engine.store_format import Parsed, StoreDamaged, StoreError, decode, parse, serialize

__all__ = ["RunStore", "StoreDamaged", "StoreError"]

RESUME = "fix the cause (free disk space, say) and run the same command again: it resumes"


@dataclass
class _Seen:
    """How far this object has read the file: which file, up to where, and its last line there (to
    tell the same file from a new one that reuses the inode number, or a hand edit in place)."""

    file: tuple[int, int]  # (st_dev, st_ino)
    end: int
    lines: int
    last: tuple[int, bytes]  # (offset, bytes) of the line ending at `end`


class RunStore:
    """Append-only JSONL store of run records, keyed by ``record["key"]``.

    ``on_reused(record)``: called (outside the lock) with the stored record when an append finds its
    key stored meanwhile by another writer; the append then keeps that record instead of failing.
    """

    def __init__(self, path: str | os.PathLike, on_reused: Callable[[dict], None] | None = None):
        self.path = Path(path)
        self.on_reused = on_reused
        self._keys: dict[str, tuple[int, int]] = {}  # key -> span of its first line, as far as read
        self._seen: _Seen | None = None

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
                # Only a hand edit or a writer without the lock can cause this; append refuses it.
                warnings.warn(f"{self.path}: duplicate key {record['key']!r}; keeping the first "
                              f"(`l2compare store repair {self.path}` moves the copy aside)")
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

    def _read(self) -> Parsed:
        """Scan the file under a shared lock (no append can be half visible)."""
        if not self.path.exists():
            return Parsed()
        try:
            with self._locked(os.O_RDONLY, fcntl.LOCK_SH) as fd:
                self._keys, self._seen = {}, None
                parsed = self._catch_up(fd)
        except OSError as exc:
            raise fault("read", self.path, exc) from exc
        if parsed.torn:
            warnings.warn(
                f"{self.path}: ignoring a torn last line ({parsed.torn} bytes, "
                f"a write was interrupted); the next append removes it"
            )
        return parsed

    def _catch_up(self, fd: int) -> Parsed:
        """Parse what was added since this object last read the file (all of it if the file was
        replaced, shrank or changed in place), and remember how far it got."""
        st = os.fstat(fd)
        seen = self._seen
        if seen is None or seen.file != (st.st_dev, st.st_ino) or st.st_size < seen.end \
                or os.pread(fd, len(seen.last[1]), seen.last[0]) != seen.last[1]:
            self._keys, seen = {}, _Seen((st.st_dev, st.st_ino), 0, 0, (0, b""))
        size = st.st_size - seen.end
        buf = os.pread(fd, size, seen.end) if size > 0 else b""
        parsed = parse(buf, self.path, seen.end, seen.lines)
        for record, span in zip(parsed.records, parsed.spans):
            self._keys.setdefault(record["key"], span)
        last = next((s for s in reversed(parsed.spans) if s[0] + s[1] < parsed.good_end), None)
        if last is not None:
            start = last[0] - seen.end
            self._seen = _Seen(seen.file, parsed.good_end, parsed.lines, (last[0], buf[start:start + last[1]]))
        else:  # nothing new that is complete: keep the old mark (or start over next time)
            self._seen = seen if seen.end else None
        return parsed

    # ------------------------------------------------------------------ writing

    def append(self, record: dict) -> dict:
        """Append one record atomically and return it; refuse a missing key.

        A key already stored: with ``on_reused``, the stored record (same key, same code) is returned
        and reported; without, ValueError. Also ValueError for a record without a string "key", or a
        value JSON cannot represent exactly (NaN, infinity: sanitize them to None first).
        A fault of the file system (disk full, I/O error, read-only): FileFault, and the file keeps
        exactly the records it had.
        """
        line = serialize(record).encode("ascii")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._locked(os.O_RDWR | os.O_APPEND | os.O_CREAT, fcntl.LOCK_EX) as fd:
                # Check and write under the same lock, so two writers cannot both decide that a key is new.
                parsed = self._catch_up(fd)
                stored = self._stored(fd, record["key"])
                if stored is None and record["key"] in self._keys:  # changed in place under our marks
                    self._keys, self._seen = {}, None
                    parsed = self._catch_up(fd)
                    stored = self._stored(fd, record["key"])
                if stored is None:
                    if parsed.torn:
                        warnings.warn(f"{self.path}: removing a torn last line ({parsed.torn} bytes) before appending")
                        os.ftruncate(fd, parsed.good_end)
                    elif parsed.missing_newline:
                        line = b"\n" + line  # keep the valid record, end its line
                    _append_or_take_back(fd, line)
        except OSError as exc:
            raise fault("append to", self.path, exc, f"every record stored before is kept; {RESUME}") from exc
        if stored is None:
            return record
        return self._reused(record, stored)

    def _stored(self, fd: int, key: str) -> dict | None:
        """The record stored under ``key``, as far as this object has read the file (None if none)."""
        span = self._keys.get(key)
        record = decode(os.pread(fd, span[1], span[0])) if span else None
        return record if record is not None and record["key"] == key else None

    def _reused(self, record: dict, stored: dict) -> dict:
        key = record["key"]
        if self.on_reused is None:
            raise ValueError(f"{self.path}: key {key!r} is already stored")
        if stored.get("code") != record.get("code"):  # a key hashes its code: a hand edit, or a foreign writer
            raise StoreError(f"{self.path}: key {key!r} is stored by other code ({stored.get('code')}, this run's "
                             f"is {record.get('code')}); `l2compare store check {self.path}` says more")
        self.on_reused(stored)
        return stored

    def replace(self, records: Iterable[dict]) -> None:
        """Rewrite the whole file with `records`, atomically (``--force`` reruns)."""
        lines = [serialize(r) for r in records]  # validate everything before touching the file
        keys = [json.loads(line)["key"] for line in lines]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            raise ValueError(f"{self.path}: duplicate keys {duplicates}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.locked_for_rewrite():
                self.swap_in("".join(lines).encode("ascii"))
        except OSError as exc:
            raise fault("write", self.path, exc, f"{self.path} is unchanged") from exc

    def swap_in(self, data: bytes) -> None:
        """Make ``data`` the file's content in one rename. The caller holds the lock on the current
        file, so that no append lands in the old inode after it has been swapped out."""
        # Temp file in the same directory: os.replace is atomic only within a
        # file system. The '.tmp' prefix is git-ignored under results/.
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".tmp.{self.path.name}.")
        try:
            _write_all(fd, data)
            os.fchmod(fd, 0o644)  # mkstemp makes 0600; results are meant to be shared
            os.fsync(fd)
            os.close(fd)
            fd = -1
            os.replace(tmp, self.path)
            fsync_dir(self.path.parent)  # make the rename itself durable
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
    def locked_for_rewrite(self) -> Iterator[int | None]:
        """The exclusive lock on the file if it exists (its descriptor), else nothing to lock (None)."""
        if not self.path.exists():
            yield None
            return
        with self._locked(os.O_RDONLY, fcntl.LOCK_EX) as fd:
            yield fd


# ---------------------------------------------------------------------- helpers


def _append_or_take_back(fd: int, line: bytes) -> None:
    """Write and fsync ``line`` at the end; if that fails, truncate back to the size before, so that
    the file holds no partial line (if even that fails, the next reader sees a torn last line)."""
    size = os.fstat(fd).st_size
    try:
        _write_all(fd, line)
        os.fsync(fd)
    except OSError:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, size)
        raise


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
