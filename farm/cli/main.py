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


@app.command()
def version() -> None:
    """Print farm's version."""
    from farm import __version__

    typer.echo(__version__)


def main() -> None:
    """Console entry point: run the app, mapping farm errors to one line and exit 1."""
    sys.exit(run_cli(app))
