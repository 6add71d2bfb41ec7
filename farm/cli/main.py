"""``farm``: the entry point. Each command group lives in its own module."""

from __future__ import annotations

import sys

import typer

from farm.cli._errors import run_cli

app = typer.Typer(
    name="farm",
    help="farm: rebuild every artifact on independent builders and record what they agree on.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    from farm.cli import build_cmd, builder_cmd, recipe_cmd, up_cmd

    app.add_typer(recipe_cmd.app, name="recipe")
    app.add_typer(builder_cmd.app, name="builder")
    app.command("build")(build_cmd.build)
    app.command("up")(up_cmd.up)


_register()


@app.command()
def version() -> None:
    """Print farm's version."""
    from farm import __version__

    typer.echo(__version__)


def main() -> None:
    """Console entry point: run the app, mapping farm errors to one line and exit 1."""
    sys.exit(run_cli(app))
