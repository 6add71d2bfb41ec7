"""The builder host's own errors stay farm errors: caught as such, one line and exit 1."""

from __future__ import annotations

import sys

import pytest
import typer

import farm.errors
from builders.errors import ArchitectureError, FetchError, OutputError, SandboxError
from farm.cli._errors import run_cli
from farm.errors import BuildError, FarmError


@pytest.mark.parametrize(
    ("error", "parent"),
    [
        (FetchError, FarmError),
        (ArchitectureError, BuildError),
        (SandboxError, BuildError),
        (OutputError, BuildError),
    ],
)
def test_a_builder_error_is_caught_as_a_farm_error_and_exits_1(
    error: type[FarmError],
    parent: type[FarmError],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert issubclass(error, parent) and issubclass(error, FarmError)
    assert error.__name__ not in farm.errors.__all__  # one home, not two
    app = typer.Typer()

    @app.command()
    def fail() -> None:
        raise error("the sandbox said no")

    monkeypatch.setattr(sys, "argv", ["farm"])
    assert run_cli(app) == 1
    assert capsys.readouterr().err.strip() == "error: the sandbox said no"
