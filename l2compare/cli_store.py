"""``l2compare store check PATH`` and ``l2compare store repair PATH`` (``l2compare.engine.store_repair``)."""
from __future__ import annotations

from pathlib import Path

from l2compare.cli_port import UsageError


def add_parser(sub) -> None:
    store = sub.add_parser("store", help="check a results store for damaged lines, duplicate keys and records of "
                                         "other code; repair moves damaged lines to PATH.damaged, keeps every record")
    store.add_argument("action", choices=("check", "repair"),
                       help="check: list what is wrong (exit 1 if there is something to repair); repair: fix it")
    store.add_argument("path", type=Path, metavar="PATH", help="a .jsonl store, or a results folder (each .jsonl in it)")


def cmd_store(args) -> int:
    """check: exit 0 when there is nothing to repair, 1 when there is; repair: 0 once repaired."""
    from l2compare.engine import store_repair

    try:
        paths = store_repair.stores_in(args.path)
    except FileNotFoundError:
        raise UsageError(f"{args.path}: no such file or folder; name a .jsonl store or a results folder") from None
    if not paths:
        raise UsageError(f"{args.path}: no .jsonl store in this folder; name a .jsonl store or a results folder")
    to_repair = False
    for path in paths:  # one store at a time, each printed as soon as it is done
        report = (store_repair.repair if args.action == "repair" else store_repair.check)(path)
        print("\n".join(store_repair.describe(report)))
        to_repair |= args.action == "check" and report.needs_repair
    return 1 if to_repair else 0
