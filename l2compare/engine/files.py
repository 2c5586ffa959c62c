"""Writing the files under a results folder so that a fault never leaves half a file, and says so in one line.

A table, plot or README written in place and interrupted (disk full, I/O error, a kill) would leave a
truncated file that looks like a result. So each is written to a temp file beside its target (same
directory: ``os.replace`` is atomic only within a file system), flushed to disk, then renamed over the
target: a reader sees the old file or the new one, never a mix. Temp names start with ``.tmp.``
(git-ignored under results/).

An ``OSError`` there is an environment fault, not a bug: it becomes a :class:`FileFault`, whose
message names the file and what to do, and which the CLI prints as one line (exit code 2).
"""
from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

__all__ = ["FileFault", "fault", "atomic_path", "write_atomic", "fsync_dir"]


class FileFault(OSError):
    """A results file could not be read or written (disk full, I/O error, read-only file system, no
    permission). ``str()`` is one line for the user; ``errno`` is the cause's."""

    def __init__(self, message: str, cause: OSError | None = None):
        super().__init__(message)
        self.errno = getattr(cause, "errno", None)


def fault(action: str, path: os.PathLike | str, exc: OSError, then: str = "") -> FileFault:
    """``cannot <action> <path> (<reason>)[; <then>]`` from the OSError that stopped it."""
    if isinstance(exc, FileFault):
        return exc
    reason = exc.strerror or str(exc) or type(exc).__name__
    return FileFault(f"cannot {action} {path} ({reason})" + (f"; {then}" if then else ""), exc)


@contextlib.contextmanager
def atomic_path(path: os.PathLike | str, *, then: str = "") -> Iterator[Path]:
    """Yield a temp path beside ``path`` (same suffix, so that writers that go by the extension, such as
    matplotlib's ``savefig``, still do); once the block has written it, rename it over ``path``.
    On any failure the temp file is removed and ``path`` keeps its old content."""
    path = Path(path)
    tmp = path.with_name(f".tmp.{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{path.suffix}")
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)  # the content is on disk before the rename makes it visible
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        raise fault("write", path, exc, then) from exc
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: os.PathLike | str, data: str | bytes, *, then: str = "") -> None:
    """Replace ``path``'s content with ``data`` (str: UTF-8), atomically."""
    with atomic_path(path, then=then) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)


def fsync_dir(directory: os.PathLike | str) -> None:
    """Make a rename in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
