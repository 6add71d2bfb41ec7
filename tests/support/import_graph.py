"""The project's import graph, read from the source with :mod:`ast`: every import
counts, at module level, under ``TYPE_CHECKING`` or inside a function.

An edge ``a -> b`` means module ``a`` imports module ``b`` (``from p import name``
counts as importing ``p.name`` when that is a module, else ``p``, the package's
``__init__``). Only modules of the project (the given roots) appear.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = ["closure", "cycles", "import_graph", "module_name"]


def module_name(path: Path) -> str:
    """``a/b/c.py`` -> ``a.b.c``; ``a/b/__init__.py`` -> ``a.b`` (path relative to the root)."""
    parts = list(path.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(name: str, modules: set[str]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _parse(path: Path, tries: int = 5) -> ast.Module:
    """``ast.parse`` of ``path``, asked again on CPython 3.11's ``SystemError: AST
    constructor recursion depth mismatch``: the constructor's depth counter is shared by
    all threads (before 3.12), and a thread left by an earlier test that formats a
    traceback (3.11's carets call ``ast.parse``) at the same moment upsets it."""
    source = path.read_text(encoding="utf-8")
    for _ in range(tries - 1):
        try:
            return ast.parse(source, str(path))
        except SystemError:
            continue
    return ast.parse(source, str(path))


def import_graph(top: Path, roots: Iterable[str]) -> dict[str, set[str]]:
    """Module -> the project modules it imports, for every ``.py`` under ``roots``."""
    files = {
        module_name(p.relative_to(top)): p for r in roots for p in sorted((top / r).rglob("*.py"))
    }
    modules = set(files)
    graph: dict[str, set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(_parse(path)):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                    for a in node.names
                ]
            for t in targets:
                found = _resolve(t, modules)
                if found is not None and found != mod:
                    graph[mod].add(found)
    return graph


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, edges = work[-1]
            for w in edges:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    component = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        component.append(w)
                        if w == v:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def closure(graph: Mapping[str, set[str]], start: Iterable[str]) -> set[str]:
    """Every module reachable from ``start`` (``start`` included)."""
    seen: set[str] = set()
    todo = list(start)
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(graph.get(m, ()))
    return seen
