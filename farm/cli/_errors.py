"""Where farm errors become one line and an exit status."""

from __future__ import annotations

import logging

import typer
from rich.console import Console

from farm.errors import FarmError

__all__ = ["err_console", "run_cli"]

err_console = Console(stderr=True)


def run_cli(app: typer.Typer) -> int:
    """Run ``app``; a :class:`FarmError` prints ``error: ...`` and returns 1, and
    ``typer.Exit(n)`` returns ``n``."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        # Outside standalone mode click hands back an Exit's code as the return value
        # instead of raising it; a command itself returns None.
        code = app(standalone_mode=False)
    except FarmError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return 1
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        return 130
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    except Exception as exc:  # click usage errors arrive as ClickException
        import click

        # Typer >= 0.29 raises its own vendored click's exceptions.
        if isinstance(exc, click.ClickException | typer.TyperException) and hasattr(exc, "show"):
            exc.show()
            return int(getattr(exc, "exit_code", 1))
        raise
    return code if isinstance(code, int) else 0
