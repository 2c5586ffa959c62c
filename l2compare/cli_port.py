"""``l2compare port`` and ``l2compare verify``: a user's own .keras file, ported to PyTorch and trained
side by side with its port.

Everything a user can get wrong (a missing file, a folder that takes no files, bad ``--data``) is
checked before either framework loads, and ends as a ``UsageError``: one line, exit code 2. The
frameworks load only inside the commands (the CLI's parent process imports neither).
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

VERIFY_OPTIMIZERS = ("adam", "sgd", "momentum", "adamw")  # l2compare.porter.verify.runner.OPTIMIZERS (that module imports frameworks)


class UsageError(Exception):
    """A user mistake: reported in one line, exit code 2 (by ``l2compare.cli.main``, for every command)."""


def _frameworks(threads: int = 1) -> None:
    """Set this process's environment, then fix both frameworks' threads: port and verify run them here."""
    from l2compare.core import environment

    environment.configure(threads)
    from keras_impl.seeding import set_threads as keras_threads
    from torch_impl.seeding import set_threads as torch_threads

    keras_threads(threads)
    torch_threads(threads)


def _model_file(path: Path) -> Path:
    if not path.exists():
        raise UsageError(f"{path}: no such file")
    return path


def _writable_file(path: Path, what: str) -> None:
    """``path`` can be written (its folder exists, it is not a folder): checked before any work."""
    if path.is_dir():
        raise UsageError(f"{what} {path}: is a folder")
    if not path.parent.is_dir():
        raise UsageError(f"{what} {path}: folder {path.parent} does not exist")
    try:
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".tmp.write-check."):
            pass
    except OSError as exc:
        raise UsageError(f"{what} {path}: cannot write there ({exc.strerror or type(exc).__name__})") from None


def cmd_port(args) -> int:
    model_path = _model_file(args.model)
    out = args.out if args.out is not None else Path(f"{model_path.stem}_torch.py")
    if out.suffix != ".py":
        raise UsageError(f"-o {out}: the port is a Python file; name it <something>.py")
    _writable_file(out, "-o")
    _frameworks()
    from l2compare.porter import PortError, codegen, modelfile, write

    try:
        model = modelfile.load(model_path)
        generated = codegen.generate(model)   # a refusal ends here, before anything is written
    except PortError as exc:
        raise UsageError(str(exc)) from None
    # Written to a temporary folder beside the target, then moved: no half-written port is left behind.
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".tmp.port.") as tmp:
        written = write(model, Path(tmp) / out.name)
        targets = [out.parent / p.name for p in written]
        for path, target in zip(written, targets):
            os.replace(path, target)
    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    regularized = sorted({p.key for p in generated.penalties})
    terms = ", ".join(f"{p.kind.upper()} {p.keras} λ={p.lam:g}" for p in generated.penalties)
    for path in targets:
        print(f"wrote {path}")
    kinds = ", ".join(sorted({type(layer).__name__ for layer in layers}))
    print(f"ported {model.name!r}: {len(layers)} layers ({kinds}); "
          f"{len(regularized)} regularized tensors" + (f" ({terms})" if terms else ""))
    return 0


def _verify_data(text: str | None):
    """--data npz:PATH -> (x, y), or None; checked before any framework starts."""
    if text is None:
        return None
    if not text.startswith("npz:") or len(text) == 4:
        raise UsageError(f"--data takes npz:PATH (a .npz file with arrays x and y), got {text!r}")
    import numpy as np

    path = Path(text[4:])
    if not path.is_file():
        raise UsageError(f"--data {path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as arrays:
            missing = [k for k in ("x", "y") if k not in arrays.files]
            if missing:
                has = ", ".join(arrays.files) or "none"
                raise UsageError(f"--data {path}: no array {' or '.join(missing)} (has: {has})")
            return arrays["x"], arrays["y"]
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - not an npz, or a corrupt one: one line
        raise UsageError(f"--data {path}: not a readable .npz file ({type(exc).__name__})") from None


def cmd_verify(args) -> int:
    import json

    model_path = _model_file(args.model)
    data = _verify_data(args.data)
    report = args.report if args.report is not None else Path(f"verify_{model_path.stem}.md")
    _writable_file(report, "--report")
    if args.records is not None:
        _writable_file(args.records, "--records")
    _frameworks(args.threads)
    from l2compare.porter import PortError, modelfile
    from l2compare.porter.verify.runner import VerifyError, verify
    from l2compare.reports import verify_report

    try:
        model = modelfile.load(model_path)
        start = time.perf_counter()
        records = verify(model, data=data, optimizer=args.optimizer, steps=args.steps, batch_size=args.batch_size)
    except (PortError, VerifyError) as exc:
        raise UsageError(str(exc)) from None
    print(f"{model.name!r}: {records[0]['steps']} steps of batch {args.batch_size}, {args.optimizer}, "
          f"{records[0]['data']} data, in {time.perf_counter() - start:.1f} s")
    print(verify_report.text_table(records))
    for note in dict.fromkeys(n for r in records for n in r["notes"]):
        print(f"note: {note}")
    verify_report.write(records, report, model_file=str(model_path))
    print(f"wrote {report.resolve()}")
    if args.records is not None:
        with open(args.records, "a") as f:
            for record in records:
                f.write(json.dumps(record) + "\n")
        print(f"appended {len(records)} records to {args.records}")
    return 0
