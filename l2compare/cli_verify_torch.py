"""``l2compare verify MODEL.keras --torch FILE.py:CLASS``: the options, checked before any framework loads, and
the command (``l2compare.porter.verify.user_runner`` does the work).

Framework-free at import, and independent of the other CLI modules but ``cli_compiled`` (a leaf): a mistake is a ``ValueError`` (or
``argparse.ArgumentTypeError``) here, which ``l2compare.cli_port.cmd_verify`` turns into its one-line
``UsageError`` (exit code 2), as it does the porter's and verify's own errors.
"""
from __future__ import annotations

import argparse
import ast
import json
import time
from pathlib import Path

OPTIMIZER_SYNTAX = ("a torch.optim class called with keyword arguments whose values are Python literals "
                    "(numbers, strings, True/False/None, tuples), e.g. \"AdamW(lr=1e-3, weight_decay=1e-2)\"")

def torch_optimizer(text: str) -> tuple[str, dict]:
    """``--torch-optimizer "AdamW(lr=1e-3, betas=(0.9, 0.999))"`` -> ("AdamW", {"lr": 0.001, "betas": (...)}).

    Parsed with ``ast`` and ``ast.literal_eval`` alone: the text is never evaluated, so a call of anything
    but a bare name, a positional argument or a value that is not a literal is refused in one line. Whether the
    name is a torch.optim class is checked once torch loads (``l2compare.porter.verify.user_optimizer``)."""
    def refuse(what: str):
        return argparse.ArgumentTypeError(f"--torch-optimizer {text!r}: {what}; expected {OPTIMIZER_SYNTAX}")

    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise refuse("not a Python call") from None
    if not isinstance(tree, ast.Call) or not isinstance(tree.func, ast.Name):
        raise refuse("not a call of a class name")
    if tree.args:
        raise refuse("positional arguments (verify gives the parameters; name every other argument)")
    kwargs = {}
    for keyword in tree.keywords:
        if keyword.arg is None:
            raise refuse("**kwargs")
        if keyword.arg == "params":
            raise refuse("params= (verify gives the module's parameters)")
        try:
            value = ast.literal_eval(keyword.value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise refuse(f"{keyword.arg}={ast.get_source_segment(text.strip(), keyword.value)} is not a literal") \
                from None
        if isinstance(value, (dict, set, list, bytes)):
            raise refuse(f"{keyword.arg}= is a {type(value).__name__}")
        kwargs[keyword.arg] = value
    return tree.func.id, kwargs


DECAY_ON = ("all", "regularized")


def add_arguments(verify: argparse.ArgumentParser) -> None:
    mine = verify.add_argument_group("your own torch port (instead of the generated one; --recipes and --dtypes "
                                     "do not apply)")
    mine.add_argument("--torch", default=None, metavar="FILE.py:CLASS",
                      help="an nn.Module subclass built with no arguments, compared one step at a time with Keras's "
                           "train step (--optimizer: Keras's side)")
    mine.add_argument("--torch-optimizer", type=torch_optimizer, default=None, metavar='"Class(key=value, ...)"',
                      help="a torch.optim class with literal keyword arguments, e.g. \"AdamW(lr=1e-3, "
                           "weight_decay=1e-2)\" (default: torch's class for --optimizer at Keras's "
                           "hyperparameters)")
    mine.add_argument("--decay-on", choices=DECAY_ON, default="all",
                      help="the tensors your optimizer's weight_decay acts on: all (Optimizer(model.parameters(), "
                           "weight_decay=...), the default) or regularized (parameter groups: only the tensors "
                           "Keras regularizes with L2)")
    mine.add_argument("--penalty", action="store_true",
                      help="add Keras's L2 (λ·Σw² per regularized tensor) to your loss")
    mine.add_argument("--map", type=Path, default=None, metavar="JSON_FILE",
                      help="{\"keras weight\": \"your state-dict key\"} pairs (default: by order and shape)")


def options(args) -> tuple[tuple | None, dict | None]:
    """``--torch``'s options checked before any framework loads: (the parsed optimizer or None, the ``--map``
    pairs or None). A mistake: ValueError, one line."""
    if args.torch is None:
        given = [o for o, v in (("--torch-optimizer", args.torch_optimizer), ("--penalty", args.penalty),
                                ("--map", args.map)) if v]
        if given:
            raise ValueError(f"{given[0]} describes your own torch port: use it with --torch FILE.py:CLASS")
        return None, None
    path_text, _, name = args.torch.rpartition(":")
    if not path_text or not name.isidentifier():
        raise ValueError(f"--torch takes FILE.py:CLASS (a class of your file), got {args.torch!r}")
    if not Path(path_text).is_file():
        raise ValueError(f"--torch {path_text}: no such file")
    if args.torch_optimizer is None and not args.penalty:
        raise ValueError("--torch needs --torch-optimizer \"Class(lr=..., ...)\" and/or --penalty (Keras's L2 added "
                         "to your loss)")
    mapping = None
    if args.map is not None:
        if not args.map.is_file():
            raise ValueError(f"--map {args.map}: no such file")
        try:
            mapping = json.loads(args.map.read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"--map {args.map}: not JSON ({type(exc).__name__})") from None
        if not isinstance(mapping, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                    for k, v in mapping.items()):
            raise ValueError(f"--map {args.map}: expected a JSON object {{\"keras weight\": \"torch state-dict key\"}}")
    return args.torch_optimizer, mapping


def run(args, model_path: Path, data, report: Path, optimizer_text, mapping, compiled_note=None) -> int:
    """The command, frameworks loaded: exit 0 exact, 1 not (a finding). The user's file, class and tensors, the
    porter's refusals and bad data raise ``VerifyError``/``PortError`` (the caller's usage error).
    ``compiled_note``: what the file was compiled with, where it differs from Keras's side (cli_compiled)."""
    from l2compare.porter import modelfile
    from l2compare.porter.verify.user_optimizer import UserOptimizer
    from l2compare.porter.verify.user_port import load_user_class
    from l2compare.porter.verify.user_runner import verify_user_port
    from l2compare.reports import verify_torch_report

    from l2compare.porter.verify.torch_side import stock_optimizer

    name, kwargs = optimizer_text if optimizer_text is not None else stock_optimizer(args.optimizer)
    optimizer = UserOptimizer(name, kwargs)
    cls = load_user_class(args.torch)
    model = modelfile.load(model_path)
    start = time.perf_counter()
    result = verify_user_port(model, cls, optimizer, penalty=args.penalty, mapping=mapping, decay_on=args.decay_on,
                              keras_optimizer=args.optimizer, steps=args.steps, batch_size=args.batch_size, data=data)
    own = hyperparameter_note(optimizer, args.optimizer)
    for note in (own, compiled_note):   # first: the terminal shows the first notes
        if note:
            result.notes.insert(0, note)
    if optimizer_text is None:
        result.notes.append(f"no --torch-optimizer: torch.optim.{optimizer.text}, the torch class of Keras's "
                            f"{args.optimizer} at Keras's hyperparameters")
    steps = (f"{result.records[0]['steps']} step(s) of batch {args.batch_size}" if result.records
             else "the forward pass")
    print(verify_torch_report.headline(result, f"{steps}, in {time.perf_counter() - start:.1f} s"))
    for line in verify_torch_report.terminal_lines(result):
        print(line)
    verify_torch_report.write(result, report, model_file=str(model_path), torch_file=args.torch)
    print(f"wrote {report.resolve()}")
    if args.records is not None:
        with open(args.records, "a") as f:
            for record in result.records:
                f.write(json.dumps({**record, "torch": args.torch, "torch_optimizer": result.optimizer}) + "\n")
        print(f"appended {len(result.records)} records to {args.records}")
    return 0 if result.exact else 1


def hyperparameter_note(optimizer, keras_optimizer: str) -> str | None:
    """``cli_compiled.torch_note`` on the user's torch optimizer: its keywords over its class's defaults, read from
    the class's signature (this floor imports no framework)."""
    import inspect

    from l2compare.cli_compiled import torch_note
    from l2compare.porter.verify.keras_side import HYPERPARAMETERS

    defaults = {k: p.default for k, p in inspect.signature(optimizer.cls).parameters.items()
                if isinstance(p.default, (int, float, tuple)) and not isinstance(p.default, bool)}
    return torch_note({**defaults, **optimizer.kwargs}, keras_optimizer, HYPERPARAMETERS)
