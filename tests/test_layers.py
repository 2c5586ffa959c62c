"""The floors of the house plan hold: nothing imports upward, nothing imports in a circle.

Read from the source (every ``import`` statement, including the ones inside functions), so
a lazy import cannot hide a dependency. The floors, bottom to top, are packages: ``l2compare.core``,
the two ``*_impl`` packages (one floor; they never import each other), ``l2compare.parity`` and
``l2compare.porter``, ``l2compare.engine``, ``l2compare.reports``, and the roof, ``l2compare`` itself. A
module's floor is that of the deepest floor package holding it, never the first part of its name.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FLOORS = {"l2compare.core": 0, "keras_impl": 1, "torch_impl": 1, "l2compare.parity": 2, "l2compare.porter": 2,
          "l2compare.engine": 3, "l2compare.reports": 4, "l2compare": 5}
# Third-party frameworks, and which of our floors may import each. The core imports none.
FRAMEWORKS = {"keras": {"keras_impl", "l2compare.parity", "l2compare.porter"},
              "tensorflow": {"keras_impl", "l2compare.parity", "l2compare.porter"},
              "torch": {"torch_impl", "l2compare.parity", "l2compare.porter"}, "jax": set()}
TOP_LEVEL = ("l2compare", "keras_impl", "torch_impl")


def floor_of(module: str) -> str:
    """The floor package holding ``module``: the longest floor name that is a prefix of it."""
    holders = [f for f in FLOORS if module == f or module.startswith(f + ".")]
    assert holders, f"{module} is on no floor"
    return max(holders, key=len)


def _modules() -> dict[str, Path]:
    out = {}
    for top in TOP_LEVEL:
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
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
    """pyproject installs exactly the three top-level packages; every floor is a package in them."""
    import re

    listed = re.search(r"^include = \[(.*?)\]", (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    assert re.findall(r'"(\w+)\*"', listed) == list(TOP_LEVEL)
    assert all((ROOT / f.replace(".", "/") / "__init__.py").exists() for f in FLOORS)
    assert {floor_of(m) for m in MODULES} == set(FLOORS)


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every import from a floor to a higher one, or between the two ``*_impl`` packages."""
    found = []
    for module, targets in graph.items():
        mine = floor_of(module)
        for target in targets:
            theirs = floor_of(target)
            if theirs != mine and FLOORS[theirs] >= FLOORS[mine]:
                found.append(f"{module} (floor {FLOORS[mine]}) imports {target} (floor {FLOORS[theirs]})")
    return found


def test_nothing_imports_upward():
    bad = upward_imports(GRAPH)
    assert not bad, "a floor may only import the floors below it:\n" + "\n".join(bad)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_frameworks_only_where_they_belong(module):
    package = floor_of(module)
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
    assert "l2compare.core.spec" in GRAPH["l2compare.engine.workers"]
    assert "keras_impl.train" in GRAPH["keras_impl.worker"]
    assert floor_of("l2compare.core.data.sets") == "l2compare.core" and floor_of("l2compare.cli") == "l2compare"
    # upward: the core importing the engine, the engine importing the CLI, one impl importing the other
    for module, target in [("l2compare.core.spec", "l2compare.engine.workers"),
                           ("l2compare.engine.store", "l2compare.cli"), ("keras_impl.train", "torch_impl.models"),
                           ("l2compare.core.data.sets", "l2compare.porter.layers.registry")]:
        assert upward_imports({module: {target}}), f"{module} -> {target} not seen as upward"
    assert not upward_imports({"l2compare.cli": {"l2compare.core.spec"}})
    saved = GRAPH["l2compare.core.names"]
    try:
        GRAPH["l2compare.core.names"] = saved | {"l2compare.core.spec"}  # spec imports names: a circle
        assert _cycle() is not None
    finally:
        GRAPH["l2compare.core.names"] = saved


def test_the_core_imports_no_framework_at_run_time():
    """Importing the whole core in a fresh process loads no ML framework (the parent process of
    every run, and `l2compare list`, stay light)."""
    import subprocess
    import sys

    code = ("import sys; import l2compare.core.spec, l2compare.core.data.sets, l2compare.core.records, "
            "l2compare.core.columns, l2compare.core.environment, l2compare.core.training, "
            "l2compare.core.bench_loop, l2compare.engine.workers, l2compare.engine.store; "
            "print(sorted(m for m in ('keras', 'tensorflow', 'torch', 'jax') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"
