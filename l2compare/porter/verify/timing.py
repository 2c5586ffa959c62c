"""How long ``l2compare verify`` takes on a real backbone, and its peak memory: a record per run, added to the JSON
list in ``results/verify_timing.json`` (a plain list, not a keyed store: ``l2compare store`` reads only the
``.jsonl`` stores); ``results/verify.md`` shows them as its timing rows.

    python -m l2compare.porter.verify.timing results/verify_timing.json ResNet50 --side 224 --steps 3 --threads 2

Builds the keras.applications model as users build it (``weights=None``, 10 classes, L2 1e-4 on every kernel,
``l2compare.porter.applications.with_l2``), saves it, and runs the CLI on it in a child process, as a user would:
the wall time includes the frameworks' imports and the traces, and the peak is the child's maximum resident set
(``os.wait4``'s rusage, taken by a small launcher: ``timed``). Not part of ``make results``: ResNet50 at 224×224 takes minutes and 12 GB.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def build(name: str, side: int, path: Path) -> int:
    """Save ``name`` at ``side``×``side`` with L2 on every kernel to ``path``; its parameter count."""
    from l2compare.core import environment

    environment.configure(1)
    import keras

    from l2compare.porter.applications import with_l2

    keras.utils.set_random_seed(0)
    model = with_l2(getattr(keras.applications, name)(weights=None, input_shape=(side, side, 3), classes=10))
    model.save(path)
    return int(model.count_params())


# A small Python process starts the command and reports its exit code and peak: Linux carries a process's peak
# resident set across fork and exec, so a child of a large process (this one after Keras built the model, or a test
# worker) would report at least its parent's size.
_LAUNCHER = ("import json, os, subprocess, sys\n"
             "child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
             "_, status, usage = os.wait4(child.pid, 0)\n"
             "print(json.dumps([os.waitstatus_to_exitcode(status), usage.ru_maxrss]))\n")


def timed(argv: list[str]) -> tuple[int, float, float]:
    """(exit code, wall seconds, peak resident set of the command in GB) of one command."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _LAUNCHER, *argv], capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    code, peak_kb = json.loads(done.stdout)
    return code, wall, peak_kb / 1024 ** 2   # Linux reports kilobytes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="JSON file (a list of records) the record is added to")
    parser.add_argument("application", help="a keras.applications model, e.g. ResNet50")
    parser.add_argument("--side", type=int, default=224)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--optimizer", default="momentum")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    from l2compare.core import machine

    with tempfile.TemporaryDirectory() as folder:
        model, records = Path(folder) / f"{args.application}.keras", Path(folder) / "records.jsonl"
        parameters = build(args.application, args.side, model)
        command = [sys.executable, "-m", "l2compare.cli", "verify", str(model), "--steps", str(args.steps),
                   "--batch-size", str(args.batch_size), "--optimizer", args.optimizer, "--threads", str(args.threads),
                   "--report", str(Path(folder) / "report.md"), "--records", str(records)]
        code, wall, peak = timed(command)
        verdicts = [json.loads(line) for line in records.read_text().splitlines()] if records.exists() else []
    record = {"application": args.application, "input": f"{args.side}×{args.side}", "parameters": parameters,
              "batch_size": args.batch_size, "steps": args.steps, "optimizer": args.optimizer, "threads": args.threads,
              "exit": code, "wall_s": round(wall, 1), "peak_gb": round(peak, 2),
              "verdicts": {f"{r['dtype']} {r['recipe']}": r["verdict"] for r in verdicts},
              "machine": machine.provenance()}
    records = json.loads(args.out.read_text()) if args.out.exists() else []
    # Written beside and renamed over: an interrupted write keeps the earlier records (the porter may not import
    # the engine's write_atomic, a floor above it).
    partial = args.out.with_name(f".tmp.{args.out.name}")
    partial.write_text(json.dumps(records + [record], indent=1, ensure_ascii=False) + "\n")
    os.replace(partial, args.out)
    print(json.dumps(record))
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
