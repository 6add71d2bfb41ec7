"""Tables of the read commands (``farm builds``, ``farm builders``, ``farm attestations``).

By default a table fits 80 columns: short ids, times as ages, the columns that tell the
rows apart; on a narrower terminal cells wrap or fold, never end in an ellipsis.
``--wide`` shows every column with full ids, digests and times, at the table's natural
width. ``--json`` prints what the API answered, for scripts.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

__all__ = ["SHORT", "JsonOpt", "WideOpt", "ago", "echo_json", "short", "show", "table", "when"]

#: Characters of an id (build id, builder id) shown by default: unique in practice.
SHORT = 12

WideOpt = Annotated[
    bool, typer.Option("--wide", help="Every column, with full ids, digests and times.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the API's answer as JSON.")]


def table(*columns: str, wide: bool, title: str | None = None) -> Table:
    """A table of ``columns``, without borders unless ``wide``. A cell that does not fit
    wraps at spaces, or folds; it is never cut."""
    from rich import box
    from rich.table import Table

    grid = Table(
        title=title,
        box=box.SQUARE if wide else box.SIMPLE_HEAD,
        pad_edge=wide,
        collapse_padding=not wide,  # two spaces between columns, not three
        title_justify="left",
    )
    for name in columns:
        grid.add_column(name, overflow="fold")
    return grid


def show(grid: Table, *, wide: bool) -> Console:
    """Print ``grid`` on stdout; return the console for what follows it.

    ``wide``, the table gets its natural width even past the terminal's (as
    ``ps auxww`` does): folded into 80 columns, nine columns would be unreadable.
    """
    from rich.console import Console
    from rich.measure import Measurement

    console = Console()
    if wide:
        natural = Measurement.get(console, console.options.update_width(10_000), grid).maximum
        console = Console(width=max(console.width, natural))
    console.print(grid)
    return console


def short(value: str | None) -> str:
    """The first :data:`SHORT` characters of an id, or ``-``."""
    return value[:SHORT] if value else "-"


def ago(value: str | None, now: datetime | None = None) -> str:
    """An ISO 8601 time from the API as an age ("42 s ago", "3 h ago"), or ``never``."""
    if not value:
        return "never"
    then = datetime.fromisoformat(value)
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    seconds = int(((now or datetime.now(UTC)) - then).total_seconds())
    if seconds < 0:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def when(value: str | None) -> str:
    """An ISO 8601 time from the API to the second (``--wide``), or ``never``."""
    return value[:19].replace("T", " ") if value else "never"


def echo_json(value: Any) -> None:
    """``value`` as indented JSON on stdout (keys sorted, so output diffs well)."""
    typer.echo(json.dumps(value, indent=2, sort_keys=True))
