"""``farm``: the entry point. Each command group lives in its own module."""

from __future__ import annotations

import sys

import typer

from farm.cli import profile
from farm.cli._errors import run_cli
from farm.cli._help import ReflowGroup

app = typer.Typer(
    name="farm",
    help="farm: rebuild every artifact on independent builders and record what they agree on.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=ReflowGroup,  # help reads as paragraphs at any width (see farm.cli._help)
)


bench_app = typer.Typer(
    help="Benchmarks: each prints what it measured and ends with one line of JSON.",
    no_args_is_help=True,
)


def _register() -> None:
    """Add farm's own commands, then those other packages offer through entry points.

    ``farm`` imports none of ``builders``, ``ledger`` or ``api``: they plug their
    commands in (entry point groups ``farm.commands`` for command groups,
    ``farm.command`` for single top-level commands, and ``farm.bench``).
    """
    from importlib.metadata import entry_points

    # `farm pull` / `farm verify` load only their own command: the rest of the CLI costs
    # seconds of imports, which would dominate verifying a file.
    single = {ep.name: ep for ep in entry_points(group="farm.command")}
    if len(sys.argv) > 1 and sys.argv[1] in single:
        app.command(sys.argv[1])(single[sys.argv[1]].load())
        return

    from farm.cli import build_cmd, coordinator_cmd, recipe_cmd, up_cmd

    app.add_typer(recipe_cmd.app, name="recipe")
    app.add_typer(coordinator_cmd.app)  # farm serve, farm operator
    app.command("build")(build_cmd.build)
    app.command("up")(up_cmd.up)
    for ep in sorted(entry_points(group="farm.commands"), key=lambda e: e.name):
        app.add_typer(ep.load(), name=ep.name)
    for ep in sorted(entry_points(group="farm.command"), key=lambda e: e.name):
        app.command(ep.name)(ep.load())
    for ep in sorted(entry_points(group="farm.bench"), key=lambda e: e.name):
        bench_app.command(ep.name)(ep.load())
    app.add_typer(bench_app, name="bench")


_register()


@app.command()
def version() -> None:
    """Print farm's version."""
    from farm import __version__

    typer.echo(__version__)


def main() -> None:
    """Console entry point: run the app, mapping farm errors to one line and exit 1."""
    profile.apply_profile()  # defaults left by `farm up --keep-running`
    sys.exit(run_cli(app))
