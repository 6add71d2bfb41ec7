"""The I/O of ``farm recipe check``: files, Docker, the network, Rich progress.

The comparison is :mod:`farm.recipe_check`; the builds are :mod:`builders.local_build`
(imported when the command runs, so ``farm`` alone still loads no builder code); the
upstream download is the coordinator's :func:`farm.coordinator.upstream.fetch_upstream`.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from farm.errors import ConfigError, RecipeError
from farm.recipe import Recipe
from farm.recipe_check import BuildRun, CheckResult, check_file, exit_code, run_diff
from farm.recipe_lint import find_recipe_files

__all__ = ["run_check"]

_STYLE = {
    "verified": "green",
    "differs from upstream": "yellow",
    "not deterministic": "bold red",
    "failed": "red",
}


@contextlib.contextmanager
def _work_root(work: Path | None) -> Iterator[Path]:
    if work is None:
        with tempfile.TemporaryDirectory(prefix="farm-recipe-check-") as tmp:
            yield Path(tmp)
        return
    if work.exists() and (not work.is_dir() or any(work.iterdir())):
        raise ConfigError(f"--work {work} must be an empty directory or not exist")
    work.mkdir(parents=True, exist_ok=True)
    yield work


def _print(console: Console, result: CheckResult) -> None:
    """The result's line, its status coloured."""
    head = f"{result.path}: {result.label}: " if result.label else f"{result.path}: "
    detail = f": {result.detail}" if result.detail else ""
    line = Text.assemble(head, (result.status, _STYLE[result.status]), detail)
    console.print(line, highlight=False, soft_wrap=True)


def run_check(
    paths: Sequence[Path], *, work: Path | None, cache: Path | None, console: Console
) -> int:
    """Check every recipe file under ``paths``; print a line each; return the exit status."""
    from builders.local_build import build_locally
    from builders.variation import Variation
    from farm.coordinator.upstream import fetch_upstream

    files = find_recipe_files(paths)
    if not files:
        raise RecipeError(f"no recipe files found under {', '.join(map(str, paths))}")
    variations = Variation.pair()
    results: list[CheckResult] = []
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with (
        _work_root(work) as root,
        Progress(*columns, console=console, transient=True) as progress,
    ):
        task = progress.add_task("checking", total=len(files))

        def say(message: str) -> None:
            progress.update(task, description=message[:100])

        def build(recipe: Recipe, dest: Path, i: int) -> BuildRun:
            return build_locally(
                recipe, dest, variation=variations[i], fetch_cache=cache, progress=say
            )

        for n, file in enumerate(files, start=1):
            result = check_file(
                file,
                root / f"{n}-{file.stem}",
                build=build,
                fetch=fetch_upstream,
                diff=run_diff,
                progress=say,
            )
            results.append(result)
            _print(progress.console, result)
            progress.advance(task)
    counts = {s: sum(r.status == s for r in results) for s in _STYLE}
    summary = ", ".join(f"{c} {s}" for s, c in counts.items() if c)
    console.print(f"{len(results)} recipe(s): {summary}", highlight=False)
    if work is not None:
        console.print(f"outputs and diffoscope reports kept in {work}", highlight=False)
    return exit_code(results)
