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


def _register(argv: list[str]) -> None:
    """Add farm's own commands, then those other packages offer through entry points.

    ``farm`` imports none of ``builders``, ``ledger`` or ``api``: they plug their
    commands in (entry point groups ``farm.commands`` for command groups,
    ``farm.command`` for single top-level commands, and ``farm.bench``). Only what the
    command line names is imported: ``farm ledger run`` loads the ledger's commands and
    not the coordinator's, ``farm bench api`` that bench alone; ``farm`` or
    ``farm --help`` alone loads everything to list it.
    """
    from importlib.metadata import entry_points

    first = argv[1] if len(argv) > 1 else ""
    single = {ep.name: ep for ep in entry_points(group="farm.command")}
    groups = {ep.name: ep for ep in entry_points(group="farm.commands")}
    benches = {ep.name: ep for ep in entry_points(group="farm.bench")}
    if first in single:  # farm pull / farm verify: a file's check must not wait on imports
        app.command(first)(single[first].load())
        return
    if first in groups:
        app.add_typer(groups[first].load(), name=first)
        return
    if first == "bench":
        wanted = argv[2] if len(argv) > 2 and argv[2] in benches else None
        for ep in sorted(benches.values(), key=lambda e: e.name):
            if wanted in (None, ep.name):
                bench_app.command(ep.name)(ep.load())
        app.add_typer(bench_app, name="bench")
        return
    from farm.cli import build_cmd, coordinator_cmd, recipe_cmd, tls_cmd, up_cmd

    app.add_typer(recipe_cmd.app, name="recipe")
    app.add_typer(tls_cmd.app, name="tls")
    app.add_typer(coordinator_cmd.app)  # farm serve, farm operator
    app.command("build")(build_cmd.build)
    app.command("up")(up_cmd.up)
    for name, ep in sorted(groups.items()):
        app.add_typer(ep.load(), name=name)
    for name, ep in sorted(single.items()):
        app.command(name)(ep.load())
    for name, ep in sorted(benches.items()):
        bench_app.command(name)(ep.load())
    app.add_typer(bench_app, name="bench")


def _own_argv() -> list[str]:
    """``sys.argv`` when this process is the ``farm`` command; otherwise (a test importing
    the app) no arguments, so every command is registered."""
    prog = sys.argv[0].replace("\\", "/") if sys.argv else ""
    if prog.rsplit("/", 1)[-1] == "farm" or prog.endswith("farm/cli/__main__.py"):
        return sys.argv
    return []


_register(_own_argv())


@app.command()
def version() -> None:
    """Print farm's version."""
    from farm import __version__

    typer.echo(__version__)


def main() -> None:
    """Console entry point: run the app, mapping farm errors to one line and exit 1."""
    profile.apply_profile()  # defaults left by `farm up --keep-running`
    sys.exit(run_cli(app))
