"""``farm recipe``: lint and check recipes, export the schema, print digests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from farm.cli.infer_cmd import new
from farm.errors import RecipeError
from farm.recipe import Recipe, load_recipe
from farm.recipe_lint import lint_paths

app = typer.Typer(
    help="Work with recipes: lint and check them, export their schema, print digests.",
    no_args_is_help=True,
)
console = Console()

SCHEMA_PATH = Path("recipes/schema.json")


def schema_text() -> str:
    """The published JSON Schema of a recipe, as ``recipes/schema.json`` holds it."""
    schema = Recipe.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://farm.dev/schemas/recipe.json"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


@app.command()
def lint(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Recipe files or directories (default: recipes/)."),
    ] = None,
) -> None:
    """Check recipes: schema, everything pinned, name/version match the path, no duplicates."""
    targets = paths or [Path("recipes")]
    recipes, problems = lint_paths(targets)
    for problem in sorted(problems):
        console.print(str(problem), highlight=False, soft_wrap=True)
    if problems:
        files = len({p.path for p in problems})
        raise RecipeError(f"{len(problems)} problem(s) in {files} recipe file(s)")
    if not recipes:
        raise RecipeError(f"no recipe files found under {', '.join(map(str, targets))}")
    console.print(f"[green]ok[/]: {len(recipes)} recipe(s) valid", highlight=False)


@app.command()
def check(
    paths: Annotated[
        list[Path], typer.Argument(help="Recipe files, or directories of recipe files.")
    ],
    work: Annotated[
        Path | None,
        typer.Option(
            help="Keep the builds' outputs and diffoscope's reports here (absent or empty); "
            "default: a temporary directory, removed at the end."
        ),
    ] = None,
    cache: Annotated[
        Path | None,
        typer.Option(help="Fetch cache (default: the builder's, FARM_CACHE_DIR)."),
    ] = None,
) -> None:
    """Lint each recipe, build it twice here under different variation, compare.

    What a recipe pull request's CI runs. Each recipe is built in its pinned image
    exactly as builders build it, twice: under hostname farm-check-a, umask 022, all
    CPUs, then farm-check-b, domain farm.invalid, umask 077, one CPU, LANG=C (unless the
    recipe pins the locale) and a clock 400 days ahead (applied only if the image has
    libfaketime; farm's builder image has not, so the second build just runs later).
    Prints one line per recipe: verified; differs from upstream (with diffoscope's list
    of differing members); not deterministic (idem, between the two builds); or failed
    (lint problem, build failure, image missing).

    Exit status: 0 when every recipe is deterministic, including one that is
    deterministic but differs from upstream (reported, not refused); 1 when any recipe
    is not deterministic or fails; 2 for a usage error.
    """
    from farm.cli.recipe_check_cmd import run_check

    raise typer.Exit(run_check(paths, work=work, cache=cache, console=console))


@app.command()
def schema(
    output: Annotated[Path, typer.Option(help="Where to write the schema.")] = SCHEMA_PATH,
    check: Annotated[
        bool, typer.Option("--check", help="Fail if the file on disk is stale; write nothing.")
    ] = False,
) -> None:
    """Export the recipe JSON Schema (CI runs it with --check)."""
    text = schema_text()
    if check:
        current = output.read_text(encoding="utf-8") if output.exists() else ""
        if current != text:
            raise RecipeError(f"{output} is stale; run `farm recipe schema` and commit it")
        console.print(f"[green]ok[/]: {output} is current", highlight=False)
        return
    output.write_text(text, encoding="utf-8")
    console.print(f"wrote {output}", highlight=False)


@app.command()
def digest(path: Annotated[Path, typer.Argument(help="A recipe file.")]) -> None:
    """Print the recipe digest (sha256 of its RFC 8785 canonical JSON)."""
    typer.echo(load_recipe(path).digest)


@app.command()
def show(path: Annotated[Path, typer.Argument(help="A recipe file.")]) -> None:
    """Print the recipe's canonical JSON form and its digest."""
    recipe = load_recipe(path)
    console.print_json(json.dumps(recipe.canonical_form()))
    console.print(f"digest: {recipe.digest}", highlight=False)


app.command("new")(new)  # farm recipe new NAME==VERSION (farm/cli/infer_cmd.py)
