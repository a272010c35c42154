"""The layering rules of docs/architecture.md, read from the imports of every module of the package."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "entropylab"
FACES = {"cli", "demo", "figures", "watch"}  # what users run; nothing below imports them
EXPERIMENTS = {"experiments"}  # composes the library for the faces
TORCH_FREE = {"logs", "law", "plots"}  # fitting a log never starts torch
HEAVY = {"torch", "transformers", "trl", "accelerate"}


def _unit(module: str) -> str:
    """The unit a module belongs to: its sub-package, or the top-level module itself (``entropylab.law``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every import in the file, relative ones resolved."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            out.append((base, [a.name for a in node.names], node.lineno))
    return out


def _graph() -> dict[str, list[tuple[str, list[str], str]]]:
    """unit -> [(imported module, names, 'file:line')] for every module of the package."""
    g: dict[str, list] = defaultdict(list)
    for path in sorted(PKG.rglob("*.py")):
        unit = _unit(_module_name(path))
        for mod, names, line in _imports(path):
            g[unit].append((mod, names, f"{path.relative_to(PKG.parent)}:{line}"))
    return g


GRAPH = _graph()


def _edges(pred) -> list[str]:
    return [
        f"{where}: {unit or 'entropylab'} imports {mod}"
        for unit, imps in GRAPH.items()
        for mod, _names, where in imps
        if pred(unit, mod)
    ]


def _target(mod: str) -> str | None:
    return _unit(mod) if mod.startswith("entropylab.") else None


def test_the_graph_is_read():
    assert {"rl", "sampling", "logs", "law", "cli"} <= set(GRAPH)
    assert any(m == "entropylab.rl.losses" for m, _, _ in GRAPH["rl"])


def test_nothing_in_the_library_imports_a_face_or_the_experiments():
    bad = _edges(lambda u, m: _target(m) in FACES and u not in FACES)
    bad += _edges(lambda u, m: _target(m) in EXPERIMENTS and u not in FACES | EXPERIMENTS)
    assert not bad, "\n".join(bad)


def test_sampling_and_rl_stay_apart():
    bad = _edges(lambda u, m: {u, _target(m)} == {"sampling", "rl"})
    assert not bad, "\n".join(bad)


def _eager_imports(path: Path) -> list[str]:
    """Modules imported when `path` is imported: its top-level imports (functions' own imports run later)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.parse(path.read_text()).body:
        for sub in ast.walk(node) if isinstance(node, (ast.If, ast.Try)) else [node]:
            if isinstance(sub, ast.Import):
                out += [a.name for a in sub.names]
            elif isinstance(sub, ast.ImportFrom):
                base = sub.module or ""
                if sub.level:
                    anchor = package.split(".")[: len(package.split(".")) - sub.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                out.append(base)
                out += [f"{base}.{a.name}" for a in sub.names]  # `from pkg import submodule`
    return out


def _file_of(module: str) -> Path | None:
    rel = Path(*module.split(".")[1:])
    for cand in (PKG / rel / "__init__.py", (PKG / rel).with_suffix(".py")):
        if cand.exists():
            return cand
    return None


def _heavy_reached(module: str) -> dict[str, list[str]]:
    """Heavy libraries imported, at import time, by `module`, with one import chain to each."""
    chains: dict[str, list[str]] = {}
    seen: set[str] = set()
    todo = [[module]]
    while todo:
        chain = todo.pop()
        mod = chain[-1]
        parts = mod.split(".")
        if parts[0] in HEAVY:
            chains.setdefault(parts[0], chain)
            continue
        if parts[0] != "entropylab" or mod in seen:
            continue
        seen.add(mod)
        parents = [".".join(parts[:i]) for i in range(2, len(parts))]  # a package runs its __init__ first
        for nxt in parents + (_eager_imports(f) if (f := _file_of(mod)) else []):
            todo.append(chain + [nxt])
    return chains


@pytest.mark.parametrize("unit", sorted(TORCH_FREE))
def test_logs_law_and_plots_import_no_torch(unit):
    mods = (
        [_module_name(p) for p in sorted((PKG / unit).rglob("*.py"))]
        if (PKG / unit).is_dir()
        else [f"entropylab.{unit}"]
    )
    bad = [f"{m}: {' -> '.join(chain)}" for m in mods for chain in _heavy_reached(m).values()]
    assert not bad, "\n".join(bad)


def test_units_form_no_circle():
    edges = {u: {t for m, _, _ in imps if (t := _target(m)) is not None and t != u} for u, imps in GRAPH.items()}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(u: str) -> list[str] | None:
        state[u] = 1
        path.append(u)
        for v in sorted(edges.get(u, ())):
            if state.get(v) == 1:
                return path[path.index(v) :] + [v]
            if v not in state and (c := visit(v)):
                return c
        state[u] = 2
        path.pop()
        return None

    for u in sorted(edges):
        if u not in state and (circle := visit(u)):
            pytest.fail("import circle: " + " -> ".join(x or "entropylab" for x in circle))


def test_private_names_stay_in_their_package():
    bad = []
    for unit, imps in GRAPH.items():
        for mod, names, where in imps:
            t = _target(mod)
            if t is None or t == unit:
                continue
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if any(p.startswith("_") for p in mod.split(".")[1:]):
                private.append(mod)
            if private:
                bad.append(f"{where}: {unit or 'entropylab'} takes {', '.join(private)} from {mod}")
    assert not bad, "\n".join(bad)
