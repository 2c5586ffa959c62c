"""Compare two generations of results: is every recorded number the same?

    python scripts/compare_generations.py OLD_DIR NEW_DIR

Records are matched by what they measure (a run's spec, a parity cell's case, column and dtype, a verify
cell), not by key: the key hashes the code, so a refactor changes every key and nothing else. What may
differ between two generations of the same numbers is left out: keys, code fingerprints, commits,
timestamps, wall times and speeds, machine facts and versions. Prints one line per store and the first
differences; exits 1 if any number differs or a record is missing on either side.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

VOLATILE = {"key", "code", "commit", "created", "wall_time_s", "steps_per_s", "machine", "versions", "timing",
            "elapsed_s", "seconds", "wall_s", "porter", "time_s", "timings"}
IDENTITY = {"runs.jsonl": lambda r: r["spec"], "parity.jsonl": lambda r: [r.get("case"), r.get("column"), r.get("dtype"),
                                                                          r.get("row")],
            "verify.jsonl": lambda r: [r.get("family"), r.get("model"), r.get("optimizer")]}


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _strip(value):
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _first_difference(a, b, where="") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"{where}.{k}: only in {'new' if k in b else 'old'}"
            if (d := _first_difference(a[k], b[k], f"{where}.{k}")):
                return d
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{where}: {len(a)} vs {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b)):
            if (d := _first_difference(x, y, f"{where}[{i}]")):
                return d
        return None
    return None if a == b else f"{where}: {a!r} vs {b!r}"


def compare(old_dir: Path, new_dir: Path, name: str) -> int:
    identity = IDENTITY[name]
    old = {json.dumps(identity(r), sort_keys=True): _strip(r) for r in _records(old_dir / name)}
    new = {json.dumps(identity(r), sort_keys=True): _strip(r) for r in _records(new_dir / name)}
    differ = [(k, d) for k in old.keys() & new.keys() if (d := _first_difference(old[k], new[k]))]
    only_old, only_new = old.keys() - new.keys(), new.keys() - old.keys()
    print(f"{name}: {len(old.keys() & new.keys()) - len(differ)} identical, {len(differ)} differ, "
          f"{len(only_old)} only in {old_dir}, {len(only_new)} only in {new_dir}")
    for k, d in differ[:5]:
        print(f"  {k[:100]}: {d}")
    return len(differ) + len(only_old) + len(only_new)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    old_dir, new_dir = map(Path, argv)
    return 1 if sum(compare(old_dir, new_dir, name) for name in IDENTITY) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
