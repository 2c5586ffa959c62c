"""The floors of the house plan hold: nothing imports upward, nothing imports in a circle.

Read from the source (every ``import`` statement, including the ones inside functions), so
a lazy import cannot hide a dependency. The floors, bottom to top, are the packages listed
in pyproject.toml; ``keras_impl`` and ``torch_impl`` share a floor and never import each other.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FLOORS = {"core": 0, "keras_impl": 1, "torch_impl": 1, "parity": 2, "porter": 2, "engine": 3, "reports": 4,
          "l2compare": 5}
# Third-party frameworks, and which of our packages may import each. The core imports none.
FRAMEWORKS = {"keras": {"keras_impl", "parity", "porter"}, "tensorflow": {"keras_impl", "parity", "porter"},
              "torch": {"torch_impl", "parity", "porter"}, "jax": set()}


def _modules() -> dict[str, Path]:
    out = {}
    for package in FLOORS:
        for path in sorted((ROOT / package).glob("*.py")):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            out[name] = path
    return out


MODULES = _modules()


def _imports(path: Path, module: str) -> set[str]:
    """Every module ``module`` imports, at any depth of its code, resolved to absolute names."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package
                package = module if path.stem == "__init__" else module.rsplit(".", 1)[0]
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found.add(base)
            # `from pkg import mod` imports the module pkg.mod
            found |= {f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES}
    return found


def _ours(name: str) -> str | None:
    """The module of ours that ``name`` refers to (the package if it is one), else None."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


GRAPH = {m: {o for o in (_ours(i) for i in _imports(p, m)) if o and o != m} for m, p in MODULES.items()}


def test_the_floors_are_the_installed_packages():
    import re

    listed = re.search(r"^packages = \[(.*?)\]", (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    assert re.findall(r'"(\w+)"', listed) == list(FLOORS)
    assert all((ROOT / p / "__init__.py").exists() for p in FLOORS)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_nothing_imports_upward(module):
    package = module.split(".")[0]
    for target in GRAPH[module]:
        other = target.split(".")[0]
        if other == package:
            continue
        assert FLOORS[other] < FLOORS[package], (
            f"{module} (floor {FLOORS[package]}) imports {target} (floor {FLOORS[other]}): a floor may only "
            "import the floors below it")


@pytest.mark.parametrize("module", sorted(MODULES))
def test_frameworks_only_where_they_belong(module):
    package = module.split(".")[0]
    for name in _imports(MODULES[module], module):
        top = name.split(".")[0]
        if top in FRAMEWORKS:
            assert package in FRAMEWORKS[top], f"{module} imports {name}; only {sorted(FRAMEWORKS[top])} may"


def _cycle() -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(GRAPH):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_circular_imports():
    cycle = _cycle()
    assert cycle is None, "circular import: " + " -> ".join(cycle)


def test_the_checks_can_fail():
    """The graph is real: upward and circular edges would be seen."""
    assert "core.spec" in GRAPH["engine.workers"]
    assert "keras_impl.train" in GRAPH["keras_impl.worker"]
    saved = GRAPH["core.names"]
    try:
        GRAPH["core.names"] = saved | {"core.spec"}  # core.spec imports core.names: a circle
        assert _cycle() is not None
    finally:
        GRAPH["core.names"] = saved


def test_the_core_imports_no_framework_at_run_time():
    """Importing the whole core in a fresh process loads no ML framework (the parent process of
    every run, and `l2compare list`, stay light)."""
    import subprocess
    import sys

    code = ("import sys; import core.spec, core.data, core.records, core.columns, core.environment, core.training, "
            "core.bench, engine.workers, engine.store; "
            "print(sorted(m for m in ('keras', 'tensorflow', 'torch', 'jax') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"
