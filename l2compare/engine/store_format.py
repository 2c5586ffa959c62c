"""The store's line format (``l2compare.engine.store``): one JSON object per line, with a string "key".

Reading is strict but tells the two kinds of bad line apart: an invalid *last* line is a torn write
(a process killed mid-append), which the store drops and the next append truncates; an invalid line
anywhere else is damage (a hand edit, a disk fault), which :class:`StoreDamaged` names by line number
so that ``l2compare store check`` / ``repair`` can act on it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["StoreError", "StoreDamaged", "Parsed", "parse", "decode", "serialize"]


class StoreError(ValueError):
    """A store whose content stops a command (the CLI prints it as one line, exit 2)."""


class StoreDamaged(StoreError):
    """A line that is not a record, and not the last line (so not a torn write)."""

    def __init__(self, path: Path, line: int, offset: int):
        self.path, self.line = path, line
        super().__init__(
            f"{path}, line {line}: invalid record at byte {offset} (not the last line, so not a torn "
            f"write); `l2compare store check {path}` lists the damaged lines, `l2compare store repair "
            f"{path}` moves them to {path.name}.damaged and keeps every valid record")


@dataclass
class Parsed:
    """What a scan of the file (or of its end, from ``start``) found."""

    records: list[dict] = field(default_factory=list)  # every valid record, file order
    spans: list[tuple[int, int]] = field(default_factory=list)  # (offset, length) of each record's line
    good_end: int = 0  # byte offset just past the last valid newline-terminated line
    lines: int = 0  # lines before good_end
    torn: int = 0  # bytes of a torn last line (0 if none)
    missing_newline: bool = False  # last record is valid but lacks its '\n'


def serialize(record: dict) -> str:
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


def parse(buf: bytes, path: Path, start: int = 0, lines_before: int = 0) -> Parsed:
    """Parse the file's bytes from offset ``start`` (after ``lines_before`` lines) to its end.
    Only the last line may be invalid (torn); StoreDamaged for any other."""
    parsed = Parsed(good_end=start, lines=lines_before)
    *complete, tail = buf.split(b"\n")  # tail: bytes after the last '\n'
    offset = start
    for i, line in enumerate(complete):
        record = decode(line)
        if record is None and line.strip():
            if i == len(complete) - 1 and not tail:
                parsed.torn = len(line) + 1  # invalid last line, newline included
                return parsed
            raise StoreDamaged(path, lines_before + i + 1, offset)
        if record is not None:
            parsed.records.append(record)
            parsed.spans.append((offset, len(line)))
        offset += len(line) + 1
        parsed.good_end, parsed.lines = offset, lines_before + i + 1
    if tail:
        record = decode(tail)
        if record is None:
            parsed.torn = len(tail)
        else:
            parsed.records.append(record)
            parsed.spans.append((offset, len(tail)))
            parsed.missing_newline = True
    return parsed


def decode(line: bytes) -> dict | None:
    """A record, or None if the line is not a JSON object with a string key."""
    try:
        record = json.loads(line)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None
    if isinstance(record, dict) and isinstance(record.get("key"), str):
        return record
    return None


