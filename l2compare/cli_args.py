"""The argument types of the ``l2compare`` command: each turns one option's text into a value, or says
in one line what is wrong with it and what is allowed."""
from __future__ import annotations

import argparse
import math

from l2compare.cli_port import UsageError
from l2compare.core.data.sets import DatasetError, validate_name


def _seeds(text: str) -> tuple[int, ...]:
    """"3" means seeds 0, 1, 2; "0,5,7" means exactly those."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds takes a count (3) or a list (0,5,7), got {text!r}") from None
    if not values or any(v < 0 for v in values) or (len(values) == 1 and "," not in text and values[0] < 1):
        raise argparse.ArgumentTypeError(f"--seeds must be a count >= 1 or a list of seeds >= 0, got {text!r}")
    repeated = next((v for i, v in enumerate(values) if v in values[:i]), None)
    if repeated is not None:  # the same seed twice is the same run twice: a typo, not more data
        raise argparse.ArgumentTypeError(f"--seeds lists seed {repeated} more than once, got {text!r}")
    return tuple(range(values[0])) if len(values) == 1 and "," not in text else tuple(values)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def _lambda(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"λ must be a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"λ must be finite and >= 0, got {text!r}")
    return value


def _dataset(text: str) -> str:
    try:
        return validate_name(text)
    except DatasetError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _frameworks(text: str) -> list:
    """The framework columns named in ``--frameworks`` (registry order kept as given)."""
    from l2compare.core import columns

    names = [n.strip() for n in text.split(",") if n.strip()]
    for name in names:
        if name not in columns.names():
            raise UsageError(f"--frameworks: unknown framework column {name!r}; allowed: {', '.join(columns.names())}")
    if not names:
        raise UsageError(f"--frameworks: name at least one of {', '.join(columns.names())}")
    return [columns.get(n) for n in dict.fromkeys(names)]
