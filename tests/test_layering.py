"""The folder tree is the dependency graph: every import between lewm's subpackages follows the
allowed edges below, and no two modules import each other (directly or through a cycle).

Every import statement counts, including those inside functions (a lazy import is still a
dependency). docs/architecture.md draws the same table.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "lewm"

# layer -> the layers it may import (besides itself). Bottom to top.
ALLOWED: dict[str, set[str]] = {
    "utils": set(),
    "data": {"utils"},
    "losses": {"utils"},
    "envs": {"utils", "data"},
    "models": {"utils", "data", "losses"},
    "training": {"utils", "data", "losses", "models"},
    "planning": {"utils", "data", "envs", "models"},
    "analysis": {"utils", "data", "envs", "losses", "models"},
    "config": {
        "utils",
        "data",
        "models",
        "training",
        "planning",
    },  # the root config tree and presets
    "demo": {"utils", "data", "envs", "models", "training", "planning", "analysis", "config"},
    "cli": {
        "utils",
        "data",
        "envs",
        "losses",
        "models",
        "training",
        "planning",
        "analysis",
        "config",
        "demo",
    },
    "train": {"cli"},  # ``python -m lewm.train``: the torchrun entry point
    "package": set(),  # lewm/__init__.py
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _layer(module: str) -> str:
    parts = module.split(".")
    return "package" if len(parts) == 1 else parts[1]


def _imports(path: Path, module: str) -> set[str]:
    """lewm modules imported anywhere in ``path`` (absolute and relative imports)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_pkg = path.name == "__init__.py"
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "lewm"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if is_pkg else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "lewm":
                continue
            for a in node.names:  # `from lewm.pkg import submodule` depends on the submodule
                sub = f"{target}.{a.name}"
                is_module = (SRC.parent / Path(*sub.split("."))).with_suffix(".py").exists() or (
                    SRC.parent / Path(*sub.split(".")) / "__init__.py"
                ).exists()
                out.add(sub if is_module else target)
    return out


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for t in _imports(path, name):
            # the longest existing module name: lewm.models.lewm.LeWM -> lewm.models.lewm
            parts = t.split(".")
            while parts and ".".join(parts) not in modules:
                parts.pop()
            if parts and ".".join(parts) != name:
                targets.add(".".join(parts))
        graph[name] = targets
    return graph


GRAPH = _graph()


def test_every_subpackage_has_a_layer():
    assert {_layer(m) for m in GRAPH} <= set(ALLOWED), sorted({_layer(m) for m in GRAPH})


def test_imports_follow_the_allowed_edges():
    bad = []
    for mod, targets in sorted(GRAPH.items()):
        src = _layer(mod)
        for t in sorted(targets):
            dst = _layer(t)
            if dst == "package" and t == "lewm":  # `from lewm import __version__`
                continue
            if dst != src and dst not in ALLOWED[src]:
                bad.append(f"{mod} -> {t}  ({src} may not import {dst})")
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    assert _cycles(GRAPH) == []


def test_the_checker_sees_a_planted_violation_and_cycle():
    """The checks above must be able to fail."""
    planted = {"lewm.a.x": {"lewm.b.y"}, "lewm.b.y": {"lewm.a.x"}}
    assert _cycles(planted) == [["lewm.a.x", "lewm.b.y"]]
    assert "training" not in ALLOWED["planning"] and "analysis" not in ALLOWED["training"]
    # the graph holds real edges (a parser that found nothing would pass everything)
    assert "lewm.models.registry" in GRAPH["lewm.models"]
    assert any(_layer(t) == "models" for t in GRAPH["lewm.training.trainer"])


@pytest.mark.parametrize("module", ["lewm.envs", "lewm.utils.config", "lewm.data.hdf5"])
def test_low_layers_import_nothing_above(module):
    above = {"models", "training", "planning", "analysis", "cli", "config", "demo"}
    seen, todo = set(), [module]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        todo += GRAPH.get(m, ())
    assert not {_layer(m) for m in seen} & above, sorted(seen)
