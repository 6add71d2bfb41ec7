"""The exit status a command asks for is the one the process gets."""

from __future__ import annotations

import pytest
import typer

from farm.cli._errors import run_cli
from farm.errors import RecipeError

app = typer.Typer()


@app.command()
def leave(code: int) -> None:
    raise typer.Exit(code)


@app.command()
def fine() -> None:
    pass


@app.command()
def refuse() -> None:
    raise RecipeError("recipes/x/1.0.yaml: name: missing")


@pytest.mark.parametrize(
    ("argv", "status"), [(["leave", "3"], 3), (["leave", "0"], 0), (["fine"], 0)]
)
def test_typer_exit_codes_reach_the_process(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], status: int
) -> None:
    monkeypatch.setattr("sys.argv", ["farm", *argv])
    assert run_cli(app) == status


def test_a_farm_error_is_one_line_and_status_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.argv", ["farm", "refuse"])
    assert run_cli(app) == 1
    assert capsys.readouterr().err.strip() == "error: recipes/x/1.0.yaml: name: missing"


def test_a_usage_error_is_status_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.argv", ["farm", "leave", "not-a-number"])
    assert run_cli(app) == 2
