"""``farm recipe new NAME==VERSION``: infer a recipe that rebuilds upstream's wheel.

The command wires the pure inference (:mod:`farm.infer`) to the real world through
:mod:`farm.cli._inference` (PyPI's simple API, verified downloads into the builder's
fetch cache, hermetic rebuilds in the pinned builder image). With ``-r FILE``, several
releases or ``--deps`` it hands over to :mod:`farm.cli.closure_cmd`, which does the
same for a whole dependency closure. Heavy modules are imported inside the functions,
so ``farm --help`` stays fast.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from farm.cli._inference import default_settings, infer_one, parse_spec, recipe_path

__all__ = ["default_settings", "infer_one", "new", "parse_spec", "recipe_path"]

console = Console(stderr=True)


def new(
    specs: Annotated[
        list[str] | None,
        typer.Argument(
            help="Releases on the index, as NAME==VERSION (several: with their closure).",
            show_default=False,
        ),
    ] = None,
    requirement: Annotated[
        list[Path] | None,
        typer.Option(
            "-r",
            "--requirement",
            help="A file of pinned requirements (name==version a line, as pip freeze and "
            "pip-compile write them): infer recipes for them and their dependency closure.",
            show_default=False,
        ),
    ] = None,
    deps: Annotated[
        bool,
        typer.Option(
            "--deps",
            help="Also infer the dependency closure of a single NAME==VERSION "
            "(-r and several releases always do).",
        ),
    ] = False,
    out: Annotated[
        Path, typer.Option("--out", help="Recipe repository to write NAME/VERSION.yaml into.")
    ] = Path("recipes"),
    accept_differs: Annotated[
        bool,
        typer.Option(
            "--accept-differs",
            help="Write the closest recipe even when no rebuild matches upstream's wheel.",
        ),
    ] = False,
    image: Annotated[
        str | None,
        typer.Option(
            help="Builder image to pin, sha256:<64 hex> (default: the one this host builds)."
        ),
    ] = None,
    index_url: Annotated[
        str | None, typer.Option(help="Package index base URL (default: the builders' own).")
    ] = None,
    cache: Annotated[
        Path | None, typer.Option(help="Fetch cache (default: the builders' own).")
    ] = None,
    max_attempts: Annotated[
        int, typer.Option(min=1, max=20, help="Candidate rebuilds to try at most.")
    ] = 4,
    force: Annotated[
        bool, typer.Option(help="Overwrite an existing recipe file (closures: infer it again).")
    ] = False,
) -> None:
    """Infer a recipe from PyPI that rebuilds upstream's pure-Python wheel bit for bit.

    Reads the release's sdist and wheel from the index, infers the build backend and its
    version, build dependencies as of the upload time, SOURCE_DATE_EPOCH and TZ, then
    rebuilds candidates hermetically in the builder image until one matches. Writes
    OUT/NAME/VERSION.yaml only on a match (or with --accept-differs); exits 1 otherwise.

    With -r FILE, several releases or --deps: resolves the dependency closure for the
    builder image's Python (CPython 3.11, Linux x86-64), choosing for each unpinned
    dependency the newest release that satisfies every specifier and has an sdist and a
    pure wheel, infers a recipe for each one that has no recipe file yet, and ends with
    a table; exits 1 when any failed (or differs, without --accept-differs). A project
    with only platform wheels is skipped, and said so.
    """
    from farm.errors import RecipeError

    if image is not None and not re.fullmatch(r"sha256:[0-9a-f]{64}", image):
        raise RecipeError(f"--image {image!r}: give the builder image as sha256:<64 hex>")
    if not specs and not requirement:
        raise RecipeError("give a release as NAME==VERSION, or a requirements file with -r FILE")
    if requirement or deps or len(specs or []) > 1:
        from farm.cli.closure_cmd import run_closure
        from farm.requirements import pinned_from_args

        pins = pinned_from_args(requirement or [], specs or [])
        settings = default_settings(image, index_url, cache)
        code = run_closure(
            pins,
            settings,
            out=out,
            accept_differs=accept_differs,
            max_attempts=max_attempts,
            force=force,
        )
        raise typer.Exit(code)
    assert specs is not None  # one release, no -r
    _new_one(specs[0], out, accept_differs, image, index_url, cache, max_attempts, force)


def _new_one(
    spec: str,
    out: Path,
    accept_differs: bool,
    image: str | None,
    index_url: str | None,
    cache: Path | None,
    max_attempts: int,
    force: bool,
) -> None:
    """``farm recipe new NAME==VERSION``: one release, no closure."""
    from farm.errors import RecipeError
    from farm.infer.errors import NoMatchError
    from farm.infer.writer import render_yaml

    name, version = parse_spec(spec)
    target = recipe_path(out, name, version)
    if target.exists() and not force:
        raise RecipeError(f"{target} exists; pass --force to overwrite it")
    settings = default_settings(image, index_url, cache)
    with console.status(f"inferring {name}=={version}…") as status:

        def say(line: str) -> None:
            status.update(f"{name}=={version}: {line}")
            console.print(f"  {line}", highlight=False, soft_wrap=True)

        result = infer_one(name, version, settings, max_attempts=max_attempts, progress=say)
    for i, attempt in enumerate(result.attempts, 1):
        verdict = (
            "[green]matches[/]"
            if attempt.matched
            else (attempt.diff.summary() if attempt.diff else f"[red]failed[/]: {attempt.failure}")
        )
        console.print(
            f"  {i}. {attempt.candidate.label} ({attempt.seconds:.0f} s): {verdict}",
            highlight=False,
            soft_wrap=True,
        )
    if not result.matched and not accept_differs:
        raise NoMatchError(
            f"{name}=={version}: no candidate matched upstream's wheel ({result.cause}); "
            "nothing written (--accept-differs writes the closest recipe)",
            result.cause or "differs",
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_yaml(result.recipe), encoding="utf-8")
    word = "matches upstream" if result.matched else "[yellow]differs from upstream[/]"
    console.print(
        f"wrote {target}: {word} ({len(result.attempts)} attempt(s), {result.seconds:.0f} s)",
        highlight=False,
    )
