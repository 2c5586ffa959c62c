"""Installed, not only checked out: the wheel holds exactly the three top-level packages, and the
installed command runs an experiment and a port from a folder outside the checkout.

Slow (a fresh virtual environment with every pinned dependency: about 2 minutes of installs from
pip's cache), so it is opt-in (`make test-wheel`, which CI runs); nothing here can be made smaller
without leaving out the install it proves.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(out), str(ROOT)], check=True)
    (path,) = out.glob("l2compare-*.whl")
    return path


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed non-editable, with the pinned versions: its bin folder."""
    env_dir = tmp_path_factory.mktemp("venv")
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"
    subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet", "-c", str(ROOT / "constraints.txt"),
                    str(wheel)], check=True)
    return bin_dir


def test_the_wheel_holds_three_top_level_packages(wheel):
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/")[0] for name in archive.namelist() if not name.split("/")[0].endswith(".dist-info")}
        assert tops == {"l2compare", "keras_impl", "torch_impl"}
        names = archive.namelist()
    # the rooms travel too: a package list that named only the top folders would drop them
    for room in ("l2compare/core/data/sets.py", "l2compare/porter/layers/registry.py",
                 "l2compare/porter/runtime/conv.py", "l2compare/porter/verify/runner.py",
                 "l2compare/reports/porting/guide.py"):
        assert room in names


def _run(bin_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    # No PYTHONPATH and a cwd outside the checkout: only the installed packages can be imported.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([str(bin_dir / "l2compare"), *args], cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, f"l2compare {' '.join(args)}:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}"
    return out


def test_the_installed_command_runs_outside_the_checkout(installed, tmp_path):
    code = "import l2compare.core.spec as s; print(s.__file__)"
    where = subprocess.run([str(installed / "python"), "-c", code], cwd=tmp_path, capture_output=True, text=True,
                           check=True).stdout
    assert str(ROOT) not in where and "site-packages" in where

    assert "article" in _run(installed, "list", cwd=tmp_path).stdout

    out_dir = tmp_path / "out"
    _run(installed, "run", "article", "--seeds", "1", "--epochs", "1", "--frameworks", "keras,torch",
         "--out", str(out_dir), "--no-progress", cwd=tmp_path)
    records = [json.loads(line) for line in (out_dir / "runs.jsonl").read_text().splitlines()]
    assert records and {r["spec"]["framework"] for r in records} == {"keras", "torch"}
    assert (out_dir / "article.md").exists()

    model_code = ("import keras; from keras import layers, regularizers; "
                  "keras.Sequential([keras.Input((8,)), layers.Dense(4, kernel_regularizer=regularizers.l2(1e-3)), "
                  "layers.Dense(2, activation='softmax')]).save('small.keras')")
    subprocess.run([str(installed / "python"), "-c", model_code], cwd=tmp_path, check=True, capture_output=True)
    _run(installed, "port", "small.keras", "-o", "small_torch.py", cwd=tmp_path)
    assert "def l2_penalty" in (tmp_path / "small_torch.py").read_text()
    assert (tmp_path / "small_torch_weights.pt").exists()
