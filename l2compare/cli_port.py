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
VERIFY_DTYPES = ("float64", "float32")                     # ... .runner.DTYPES
VERIFY_RECIPES = ("penalty", "coupled", "stock")           # ... .torch_side.RECIPES


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


def _choices(option: str, allowed: tuple[str, ...]):
    """An argparse type: a comma-separated subset of ``allowed`` (one line naming the bad value otherwise)."""
    import argparse

    def parse(text: str) -> tuple[str, ...]:
        values = [v.strip() for v in text.split(",") if v.strip()]
        bad = [v for v in values if v not in allowed]
        if bad or not values:
            raise argparse.ArgumentTypeError(f"{option} takes a comma-separated list of {', '.join(allowed)}; "
                                             f"got {text!r}")
        return tuple(dict.fromkeys(values))

    return parse


def add_verify_parser(sub, positive_int) -> None:
    verify = sub.add_parser("verify", help="train a .keras model and its PyTorch port side by side: a verdict per "
                                           "dtype and torch recipe")
    verify.add_argument("model", type=Path, metavar="MODEL.keras")
    verify.add_argument("--data", default=None, metavar="npz:PATH",
                        help="arrays x and y (default: random data shaped like the model's input)")
    verify.add_argument("--optimizer", choices=VERIFY_OPTIMIZERS, default=None,
                        help="with Keras's defaults (default: the one the model was compiled with, when it is one of "
                             "these; else adam)")
    verify.add_argument("--steps", type=positive_int, default=20)
    verify.add_argument("--batch-size", type=positive_int, default=8)
    verify.add_argument("--dtypes", type=_choices("--dtypes", VERIFY_DTYPES), default=VERIFY_DTYPES,
                        help="verdict rows and trajectories to run (default: float64,float32; the one-step floors "
                             "always take both)")
    verify.add_argument("--recipes", type=_choices("--recipes", VERIFY_RECIPES), default=VERIFY_RECIPES,
                        help="torch recipes (default: penalty,coupled,stock)")
    verify.add_argument("--report", type=Path, default=None,
                        help="the Markdown report (default: verify_<model>.md in the current folder; its plot beside "
                             "it as .png)")
    verify.add_argument("--records", type=Path, default=None, help="append each record to this JSON-lines file")
    verify.add_argument("--plot", action="store_true", help="also print |Δ| per step against the envelope and the "
                                                            "rounding floor, as text")
    verify.add_argument("--threads", type=positive_int, default=1, help="threads per framework (same for both)")
    from l2compare.cli_verify_torch import add_arguments   # --torch and its options

    add_arguments(verify)


def _check_data(path: Path, x, y, batch_size: int):
    """What can be checked without the model: numbers, finite, at least one batch."""
    import numpy as np

    for name, a in (("x", x), ("y", y)):
        if a.dtype.kind not in "fiub":
            raise UsageError(f"--data {path}: array {name} holds {a.dtype}, not numbers")
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            bad = int((~np.isfinite(a)).sum())
            raise UsageError(f"--data {path}: array {name} holds {bad} NaN or infinite value(s); verify needs "
                             "finite numbers")
    if len(x) < batch_size:
        raise UsageError(f"--batch-size {batch_size} is larger than the data ({len(x)} samples in {path})")
    return x, y


def _verify_data(text: str | None, batch_size: int = 1):
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
            x, y = arrays["x"], arrays["y"]
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - not an npz, or a corrupt one: one line
        raise UsageError(f"--data {path}: not a readable .npz file ({type(exc).__name__})") from None
    return _check_data(path, x, y, batch_size)


def cmd_verify(args) -> int:
    import json

    from l2compare import cli_compiled, cli_verify_torch

    model_path = _model_file(args.model)
    data = _verify_data(args.data, args.batch_size)
    try:
        optimizer_text, mapping = cli_verify_torch.options(args)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    report = args.report if args.report is not None else Path(f"verify_{model_path.stem}.md")
    _writable_file(report, "--report")
    if args.records is not None:
        _writable_file(args.records, "--records")
    _frameworks(args.threads)
    from l2compare.porter import PortError, modelfile
    from l2compare.porter.verify.keras_side import HYPERPARAMETERS
    from l2compare.porter.verify.runner import VerifyError, verify

    try:   # --optimizer, or the one the file was compiled with (cli_compiled)
        config = modelfile.read_config(model_path) if model_path.suffix == ".keras" else {}
    except PortError as exc:
        raise UsageError(str(exc)) from None
    args.optimizer, compiled_note = cli_compiled.choose(config, args.optimizer, HYPERPARAMETERS)
    if args.torch is not None:
        try:
            return cli_verify_torch.run(args, model_path, data, report, optimizer_text, mapping, compiled_note)
        except (PortError, VerifyError) as exc:
            raise UsageError(str(exc)) from None
    from l2compare.reports import verify_report

    try:
        model = modelfile.load(model_path)
        start = time.perf_counter()
        records = verify(model, data=data, optimizer=args.optimizer, steps=args.steps, batch_size=args.batch_size,
                         dtypes=args.dtypes, recipes=args.recipes, progress=True)
    except (PortError, VerifyError) as exc:
        raise UsageError(str(exc)) from None
    if compiled_note:   # first: the terminal shows the first notes
        for record in records:
            record["notes"].insert(0, compiled_note)
    print(f"{model.name!r}: {records[0]['steps']} steps of batch {args.batch_size}, {args.optimizer}, "
          f"{records[0]['data']} data, in {time.perf_counter() - start:.1f} s")
    print(verify_report.text_table(records))
    for note in verify_report.terminal_notes(records):
        print(f"note: {note}")
    if args.plot:
        print(verify_report.text_plot(records))
    verify_report.write(records, report, model_file=str(model_path))
    print(f"wrote {report.resolve()} (plot: {report.with_suffix('.png').name})")
    if args.records is not None:
        with open(args.records, "a") as f:
            for record in records:
                f.write(json.dumps(record) + "\n")
        print(f"appended {len(records)} records to {args.records}")
    return 0
