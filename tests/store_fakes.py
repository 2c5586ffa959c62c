"""A framework column with no framework, for the store tests that run real ``l2compare run`` processes
(tests/test_store_*.py): its worker imports this module, not torch, so a run costs milliseconds and a
whole ``run article`` a few seconds. Also a file barrier, to make two processes overlap for sure."""
from __future__ import annotations

import os
import time
from pathlib import Path

from l2compare.core import columns

NAME = "fake_store"


class Run:
    """The fake column's training run: a record shaped enough for the engine (not for the reports)."""

    framework = "torch"

    def set_threads(self, n: int) -> None:
        pass

    def run(self, spec_dict: dict, initial=None) -> dict:
        time.sleep(float(os.environ.get("FAKE_RUN_S", "0.05")))
        return {"pid": os.getpid(), "status": "ok"}


def register() -> columns.Column:
    return columns.register(columns.Column(NAME, "torch", "none", "store_fakes", "Fake store column"))


def barrier(folder: Path, me: str, others: list[str], timeout: float = 60.0) -> None:
    """Say ``me`` is here, then wait until each of ``others`` is too (files in ``folder``)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{me}.ready").touch()
    deadline = time.monotonic() + timeout
    while not all((folder / f"{o}.ready").exists() for o in others):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{me}: {others} never reached the barrier")
        time.sleep(0.01)
