"""``farm GROUP ...`` imports that group's commands only; ``farm --help`` lists all."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _imported(*argv: str) -> set[str]:
    """The modules a ``farm`` process has imported once its commands are registered."""
    code = (
        "import sys; sys.argv = ['/usr/bin/farm', *sys.argv[1:]]; import farm.cli.main; "
        "print('\\n'.join(sys.modules))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, check=True
    )
    return set(proc.stdout.split())


@pytest.mark.parametrize(
    ("argv", "loaded", "not_loaded"),
    [
        (["ledger", "--help"], "ledger.cli", ["farm.cli.up_cmd", "builders.cli", "farm.bench"]),
        (["builder", "--help"], "builders.cli", ["farm.cli.up_cmd", "ledger.cli"]),
        (["bench", "build", "--help"], "farm.bench.build", ["farm.bench.api", "ledger.cli"]),
        (["verify", "--help"], "farm.consumer.cli", ["farm.cli.up_cmd", "ledger.cli"]),
    ],
)
def test_a_command_group_loads_only_itself(
    argv: list[str], loaded: str, not_loaded: list[str]
) -> None:
    modules = _imported(*argv)
    assert loaded in modules
    for name in not_loaded:
        assert name not in modules, f"farm {' '.join(argv)} imported {name}"


def test_help_alone_lists_every_group() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "farm.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "120"},
    ).stdout
    for name in ("ledger", "builder", "dist", "bench", "recipe", "up", "serve", "pull"):
        assert f" {name} " in out, name
