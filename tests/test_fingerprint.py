"""The code fingerprint in every run key: found through the import system, read recursively, and
changed by a change to any file that decides a recorded number.

Each fingerprint is computed in a fresh process over a temporary copy of the three top-level
packages (put first on PYTHONPATH), so the import system, not a path relative to this file,
finds what is hashed.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from l2compare.core import spec

ROOT = Path(__file__).resolve().parents[1]
TOP_LEVEL = ("l2compare", "keras_impl", "torch_impl")
# One file per fingerprinted package, a nested one where the package has rooms.
CHANGED = {"l2compare.core": "l2compare/core/data/sets.py", "keras_impl": "keras_impl/optim.py",
           "torch_impl": "torch_impl/recipes.py", "l2compare.parity": "l2compare/parity/onestep.py",
           "l2compare.engine.workers": "l2compare/engine/workers.py"}


@pytest.fixture(scope="module")
def copy(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("checkout")
    for top in TOP_LEVEL:
        shutil.copytree(ROOT / top, root / top, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def fingerprint(root: Path, *names: str) -> str:
    code = ("import sys; from l2compare.core import spec; "
            f"print(spec.source_fingerprint(*{names!r}) if {bool(names)} else spec.code_fingerprint())")
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_the_fingerprinted_packages_cover_the_code_that_decides_a_number():
    assert set(CHANGED) == set(spec.FINGERPRINTED)
    files = {relative for name in spec.FINGERPRINTED for relative, _ in spec.source_files(name)}
    assert "l2compare.core/data/sets.py" in files  # rooms are read too, not only the top folder
    assert "l2compare.engine.workers/workers.py" in files
    assert not any("reports" in f or "porter" in f for f in files)


def test_a_copy_elsewhere_hashes_the_same(copy):
    """Paths are hashed relative to each package: a wheel, a checkout and a copy give one key."""
    assert fingerprint(copy) == spec.code_fingerprint()


@pytest.mark.parametrize("package", sorted(CHANGED))
def test_a_change_in_any_fingerprinted_package_changes_the_key(copy, package):
    path = copy / CHANGED[package]
    before, original = fingerprint(copy), path.read_text()
    try:
        path.write_text(original + "\n# changed\n")
        assert fingerprint(copy) != before, f"{CHANGED[package]} changed and the fingerprint did not"
    finally:
        path.write_text(original)


def test_a_change_outside_them_leaves_the_key(copy):
    path = copy / "l2compare/reports/tables.py"
    before, original = fingerprint(copy), path.read_text()
    try:
        path.write_text(original + "\n# changed\n")
        assert fingerprint(copy) == before
    finally:
        path.write_text(original)


def test_a_package_with_no_files_or_no_package_is_an_error(copy):
    (copy / "l2compare" / "empty_room").mkdir()
    env = {**os.environ, "PYTHONPATH": str(copy)}
    for name, problem in [("l2compare.empty_room", "holds no .py files"),
                          ("l2compare.no_such_room", "cannot be found")]:
        out = subprocess.run([sys.executable, "-c", f"from l2compare.core import spec; spec.source_fingerprint({name!r})"],
                             cwd=copy, env=env, capture_output=True, text=True)
        assert out.returncode != 0 and problem in out.stderr, out.stderr
