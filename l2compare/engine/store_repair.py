"""``l2compare store check PATH`` and ``l2compare store repair PATH``: what is wrong with a store, and
putting it right without losing a line.

Three findings, each with what it means:

- **damaged**: a line that is not a JSON object with a string "key" (a hand edit, a disk fault). In
  the middle of the file every command that reads the store stops on it (``StoreDamaged``); as the
  last line it is a torn write (an interrupted append), which readers skip anyway.
- **duplicate**: a key stored a second time (a hand edit, or a writer that bypassed the lock, as on a
  network file system without locks). Readers keep the first copy.
- **other code**: a valid record made by other code than this checkout's (its ``code`` field differs
  from ``code_fingerprint()``): kept on purpose, for the record, but never reused by a run (its key
  is not one this code asks for) nor shown in a table.

Repair moves damaged lines and later duplicates to ``PATH.damaged`` (appended, never deleted) and
keeps every other line byte for byte, in one atomic rewrite under the store's lock: the ``.damaged``
file is written and flushed first, so a crash between the two steps leaves a line in both files,
never in neither.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from l2compare.engine.files import fault
from l2compare.engine.store import RunStore
from l2compare.engine.store_format import decode

__all__ = ["Report", "check", "repair", "describe", "stores_in"]


@dataclass
class Report:
    path: Path
    code: str  # this checkout's code fingerprint
    records: int = 0  # valid records kept (the first of each key)
    damaged: list[tuple[int, str]] = field(default_factory=list)  # (line number, its start)
    torn: int | None = None  # line number of an invalid last line
    duplicates: list[tuple[int, str, int]] = field(default_factory=list)  # (line, key, line of the first copy)
    other_code: list[tuple[int, str]] = field(default_factory=list)  # (line, the record's code)
    moved: int = 0  # lines repair moved to PATH.damaged

    @property
    def needs_repair(self) -> bool:
        return bool(self.damaged or self.duplicates or self.torn)

    @property
    def aside(self) -> Path:
        return self.path.with_name(self.path.name + ".damaged")


def stores_in(path: Path) -> list[Path]:
    """The stores ``path`` names: itself if a file, else every ``*.jsonl`` in that folder (not a writer's
    leftover temp file, ``.tmp.*``)."""
    if path.is_dir():
        return sorted(p for p in path.glob("*.jsonl") if not p.name.startswith(".tmp."))
    if not path.exists():
        raise FileNotFoundError(path)
    return [path]


def _scan(path: Path, data: bytes, code: str) -> tuple[Report, list[bytes], list[bytes]]:
    """The findings, the lines to keep and the lines to move aside (each ending in a newline)."""
    report, keep, move = Report(path, code), [], []
    first: dict[str, int] = {}
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the file ends with a newline: no line after it
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue  # a blank line holds nothing; the rewrite drops it
        record = decode(line)
        if record is None:
            if number == len(lines):
                report.torn = number
            else:
                report.damaged.append((number, line[:40].decode("utf-8", "replace")))
            move.append(line + b"\n")
        elif record["key"] in first:
            report.duplicates.append((number, record["key"], first[record["key"]]))
            move.append(line + b"\n")
        else:
            first[record["key"]] = number
            keep.append(line + b"\n")
            report.records += 1
            if "code" in record and record["code"] != code:
                report.other_code.append((number, str(record["code"])))
    return report, keep, move


def _code() -> str:
    from l2compare.core.spec import code_fingerprint

    return code_fingerprint()


def check(path: Path) -> Report:
    """What is wrong with the store at ``path``. Read without a lock, so as never to hold up a writer: an
    append in progress at that moment may show as a torn last line."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise fault("read", path, exc) from exc
    return _scan(path, data, _code())[0]


def repair(path: Path) -> Report:
    """Move damaged lines and later duplicates to ``PATH.damaged``; keep every valid record."""
    store = RunStore(path)
    try:
        with store.locked_for_rewrite() as fd:
            if fd is None:
                raise FileNotFoundError(path)
            data = os.pread(fd, os.fstat(fd).st_size, 0)
            report, keep, move = _scan(path, data, _code())
            if move:
                with open(report.aside, "ab") as aside:
                    aside.write(b"".join(move))
                    aside.flush()
                    os.fsync(aside.fileno())
                store.swap_in(b"".join(keep))
                report.moved = len(move)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise fault("repair", path, exc, f"{path} is unchanged") from exc
    return report


def _lines(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:8])
    return f"line {shown}" if len(numbers) == 1 else f"lines {shown}" + (", ..." if len(numbers) > 8 else "")


def describe(report: Report) -> list[str]:
    """The report as lines for the terminal: a summary line, then one line per finding."""
    aside = report.aside.name
    if report.moved:
        head = f"{report.path}: moved {report.moved} lines to {report.aside}; kept {report.records} records"
    else:
        head = f"{report.path}: {report.records} records, " + (
            "to repair (`l2compare store repair`)" if report.needs_repair else "nothing to repair")
    out = [head]
    for number, start in report.damaged:
        out.append(f"  line {number}: damaged, not a JSON record with a \"key\" (starts {json.dumps(start)}): every "
                   f"command that reads the store stops here; repair moves it to {aside}")
    if report.torn:
        out.append(f"  line {report.torn}: torn last line (an interrupted write): readers skip it and the next "
                   f"append removes it; repair moves it to {aside}")
    for number, key, original in report.duplicates:
        out.append(f"  line {number}: duplicate of key {key!r} (first at line {original}; a hand edit or a writer "
                   f"without the lock): readers keep the first; repair moves this copy to {aside}")
    if report.other_code:
        codes = sorted({c for _, c in report.other_code})
        out.append(f"  {_lines([n for n, _ in report.other_code])} ({len(report.other_code)} records): made by other "
                   f"code ({', '.join(codes[:3])}; this checkout's is {report.code}): kept, but never reused by a run "
                   f"nor shown in a table; repair keeps them")
    return out
