"""``farm recipe new -r requirements.txt``: recipes for pinned releases and their closure.

The pins (:mod:`farm.requirements`) → their dependency closure for the builder image
(:func:`farm.infer.closure.resolve_closure`, through the real index) → for each
project, in walk order: skipped with its named cause (only platform wheels, no sdist,
no wheel, a recipe file already there), failed (nothing satisfies, a conflict, an
inference error), or inferred by the same engine as ``farm recipe new NAME==VERSION``,
through one set of ports (one index client, one fetch cache, one Docker client) →
recipes written (matches; differs only with ``--accept-differs``) → one Rich table.

Exit status: 1 when any project failed, or differs and was not written; 0 otherwise
(skipped ones are listed, with why, and do not fail the command).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version
from rich.console import Console

from farm.cli._inference import Ports, Settings, infer_with, open_ports, recipe_path
from farm.errors import FarmError

if TYPE_CHECKING:
    from rich.table import Table

    from farm.infer.closure import Package
    from farm.infer.engine import Inference
    from farm.requirements import Pinned

__all__ = [
    "Row",
    "backend_label",
    "existing_recipe",
    "exit_code",
    "new_recipe_path",
    "run_closure",
    "summary_table",
]

_COLOUR = {"matched": "green", "differs": "yellow", "skipped": "cyan", "failed": "red"}


@dataclass(frozen=True)
class Row:
    """One line of the summary table."""

    name: str
    version: str
    backend: str
    result: str
    """``matched``, ``differs``, ``failed`` or ``skipped``."""
    why: str
    seconds: float
    written: bool = False


def _project_dirs(out: Path, name: str) -> list[Path]:
    """Directories of ``out`` that hold ``name``'s recipes, however they spell it."""
    if not out.is_dir():
        return []
    key = canonicalize_name(name)
    return [d for d in sorted(out.iterdir()) if d.is_dir() and canonicalize_name(d.name) == key]


def existing_recipe(out: Path, name: str, version: str) -> Path | None:
    """The recipe file of ``name`` ``version`` under ``out``, however the directory spells
    the name (``typing_extensions`` for typing-extensions) and the file the version."""
    try:
        wanted = Version(version)
    except InvalidVersion:
        return None
    for directory in _project_dirs(out, name):
        for path in sorted(directory.glob("*.yaml")):
            try:
                if Version(path.stem) == wanted:
                    return path
            except InvalidVersion:
                continue
    return None


def new_recipe_path(out: Path, name: str, version: str) -> Path:
    """Where a new recipe of ``name`` goes: beside its other versions if it has some
    (``pyproject_hooks/``), else ``OUT/NAME/VERSION.yaml``."""
    dirs = _project_dirs(out, name)
    return dirs[0] / f"{version}.yaml" if dirs else recipe_path(out, name, version)


def backend_label(result: Inference) -> str:
    """The backend the inference pinned, as ``poetry-core 2.1.3`` (or its family)."""
    if not result.attempts:
        return ""
    candidate = result.attempts[0].candidate
    pins = " ".join(f"{k} {v}" for k, v in sorted(candidate.pins.items()))
    return pins or candidate.label.split(",")[0]


def exit_code(rows: Sequence[Row]) -> int:
    """1 when any project failed, or differs without its recipe written."""
    bad = any(r.result == "failed" or (r.result == "differs" and not r.written) for r in rows)
    return 1 if bad else 0


def _closest(result: Inference) -> str:
    diffs = [a.diff for a in result.attempts if a.diff is not None]
    if diffs:
        return min(diffs, key=lambda d: d.score).summary(limit=3)
    return next((a.failure or "" for a in result.attempts), "")


def _infer(
    pkg: Package,
    ports: Ports,
    settings: Settings,
    *,
    out: Path,
    target: Path,
    accept_differs: bool,
    max_attempts: int,
    prefix: str,
    console: Console,
) -> Row:
    """Infer one chosen release and write its recipe when it may be written."""
    from farm.infer.errors import InferError
    from farm.infer.writer import render_yaml

    assert pkg.version is not None
    started = time.monotonic()
    with console.status(f"{prefix} {pkg.spec}") as status:

        def say(line: str) -> None:
            status.update(f"{prefix} {pkg.spec}: {line}")
            console.print(f"  {line}", highlight=False, soft_wrap=True)

        try:
            result = infer_with(
                ports,
                pkg.name,
                pkg.version,
                settings,
                max_attempts=max_attempts,
                progress=say,
            )
        except InferError as exc:
            return Row(pkg.name, pkg.version, "", "failed", f"{exc.cause}: {exc}", _since(started))
        except FarmError as exc:
            why = f"{type(exc).__name__}: {exc}"
            return Row(pkg.name, pkg.version, "", "failed", why, _since(started))
    backend = backend_label(result)
    if not result.matched and not accept_differs:
        why = f"{result.cause}: {_closest(result)}; nothing written (--accept-differs writes it)"
        return Row(pkg.name, pkg.version, backend, "differs", why, result.seconds)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_yaml(result.recipe), encoding="utf-8")
    shown = target.relative_to(out.parent) if target.is_relative_to(out.parent) else target
    if result.matched:
        why = (
            f"wrote {shown}, attempt {len(result.attempts)}: {result.attempts[-1].candidate.label}"
        )
        return Row(pkg.name, pkg.version, backend, "matched", why, result.seconds, written=True)
    why = f"{result.cause}: {_closest(result)}; wrote {shown} (--accept-differs)"
    return Row(pkg.name, pkg.version, backend, "differs", why, result.seconds, written=True)


def _since(started: float) -> float:
    return time.monotonic() - started


def summary_table(rows: Sequence[Row]) -> Table:
    """The closing table: one row a project, in walk order (cells fold, never cut)."""
    from farm.cli._tables import table as make_table

    table = make_table("name", "version", "backend", "result", "why", "s", wide=False)
    for r in rows:
        colour = _COLOUR.get(r.result, "white")
        table.add_row(
            r.name, r.version, r.backend, f"[{colour}]{r.result}[/]", r.why, f"{r.seconds:.0f}"
        )
    return table


def run_closure(
    pins: Sequence[Pinned],
    settings: Settings,
    *,
    out: Path,
    accept_differs: bool,
    max_attempts: int,
    force: bool,
    console: Console | None = None,
) -> int:
    """Resolve the closure of ``pins``, infer and write recipes, print the table; the exit
    status (see the module docstring)."""
    from farm.infer.closure import resolve_closure

    say = console or Console(stderr=True)
    rows: list[Row] = []
    with open_ports(settings) as ports:
        index = ports[0]
        started = time.monotonic()
        with say.status(f"resolving the closure of {len(pins)} pinned release(s)…"):
            closure = resolve_closure(pins, index)
        packages = closure.packages
        say.print(
            f"closure for CPython {closure.python} on Linux x86-64: {len(packages)} project(s) "
            f"({time.monotonic() - started:.0f} s): " + ", ".join(p.spec for p in packages),
            highlight=False,
            soft_wrap=True,
        )
        for i, pkg in enumerate(packages, 1):
            prefix = f"[{i}/{len(packages)}]"
            row = _one(pkg, ports, settings, out, accept_differs, max_attempts, force, prefix, say)
            rows.append(row)
            colour = _COLOUR.get(row.result, "white")
            say.print(
                f"{prefix} {pkg.spec}: [{colour}]{row.result}[/] {row.seconds:.0f} s — {row.why}",
                highlight=False,
                soft_wrap=True,
            )
    Console().print(summary_table(rows))
    counts = {k: sum(r.result == k for r in rows) for k in _COLOUR}
    say.print(", ".join(f"{n} {k}" for k, n in counts.items()), highlight=False)
    return exit_code(rows)


def _one(
    pkg: Package,
    ports: Ports,
    settings: Settings,
    out: Path,
    accept_differs: bool,
    max_attempts: int,
    force: bool,
    prefix: str,
    console: Console,
) -> Row:
    """What becomes of one project of the closure."""
    version = pkg.version or "?"
    if pkg.status != "chosen":
        return Row(pkg.name, version, "", pkg.status, f"{pkg.cause}: {pkg.why}", 0.0)
    assert pkg.version is not None
    existing = existing_recipe(out, pkg.name, pkg.version)
    if existing is not None and not force:
        return Row(pkg.name, version, "", "skipped", f"exists: {existing}", 0.0)
    return _infer(
        pkg,
        ports,
        settings,
        out=out,
        target=existing or new_recipe_path(out, pkg.name, pkg.version),
        accept_differs=accept_differs,
        max_attempts=max_attempts,
        prefix=prefix,
        console=console,
    )
