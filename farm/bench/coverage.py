"""``farm bench coverage --list FILE``: how many real releases `farm recipe new` matches.

Runs inference (real PyPI, real hermetic rebuilds in the builder image) on each
``name==version`` of the list, one after another, writes nothing into the recipe
repository, and ends with one JSON line: ``total``, ``matched``, ``differs``,
``failed``, ``fraction_matched``, ``median_s_per_package`` and ``causes`` (how many
releases did not match, by cause). The shipped list, ``coverage_list.txt`` beside this
module, holds popular pure-Python releases (an sdist and a ``none-any`` wheel) across
backends; none of them is a shipped recipe.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from farm.errors import ConfigError, FarmError

if TYPE_CHECKING:
    from rich.status import Status

    from farm.infer.engine import Inference

__all__ = ["DEFAULT_LIST", "Outcome", "bench_coverage", "read_list", "summarize"]

console = Console(stderr=True)
DEFAULT_LIST = Path(__file__).with_name("coverage_list.txt")


@dataclass(frozen=True)
class Outcome:
    """One release's result: ``matched``, ``differs`` or ``failed``, and why."""

    spec: str
    status: str
    cause: str | None
    seconds: float
    detail: str = ""


def read_list(path: Path) -> list[tuple[str, str]]:
    """``name==version`` lines ('#' comments, blank lines skipped); ConfigError naming the
    first bad line."""
    from farm.cli.infer_cmd import parse_spec

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the list: {exc}") from None
    found: list[tuple[str, str]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            found.append(parse_spec(line))
        except FarmError as exc:
            raise ConfigError(f"{path}:{number}: {exc}") from None
    if not found:
        raise ConfigError(f"{path}: no name==version lines")
    return found


def summarize(outcomes: Sequence[Outcome]) -> dict[str, object]:
    """The benchmark's last line as a dict (fail closed: an empty run matched nothing)."""
    total = len(outcomes)
    counts = Counter(o.status for o in outcomes)
    causes = Counter(o.cause or o.status for o in outcomes if o.status != "matched")
    return {
        "total": total,
        "matched": counts["matched"],
        "differs": counts["differs"],
        "failed": counts["failed"],
        "fraction_matched": round(counts["matched"] / total, 3) if total else 0.0,
        "median_s_per_package": (
            round(statistics.median(o.seconds for o in outcomes), 1) if total else None
        ),
        "causes": dict(sorted(causes.items())),
    }


def _status_line(status: Status, prefix: str) -> Callable[[str], None]:
    def show(line: str) -> None:
        status.update(f"{prefix}: {line}")

    return show


def _detail(result: Inference) -> str:
    """The matching candidate, or how close the closest attempt came."""
    for attempt in result.attempts:
        if attempt.matched:
            return attempt.candidate.label
    diffs = [a.diff for a in result.attempts if a.diff is not None]
    if diffs:
        return min(diffs, key=lambda d: d.score).summary(limit=3)
    return next((a.failure or "" for a in result.attempts), "")


def bench_coverage(
    list_file: Annotated[
        Path, typer.Option("--list", help="One name==version a line (default: the shipped list).")
    ] = DEFAULT_LIST,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Only the first N releases of the list.")
    ] = None,
    max_attempts: Annotated[int, typer.Option(min=1, max=20, help="Rebuilds per release.")] = 4,
    cache: Annotated[Path | None, typer.Option(help="Fetch cache (default: builders').")] = None,
) -> None:
    """Infer a recipe for each release of a list; print the fraction matched bit for bit."""
    from farm.cli.infer_cmd import default_settings, infer_one
    from farm.infer.errors import InferError

    releases = read_list(list_file)[:limit]
    settings = default_settings(None, None, cache)
    outcomes: list[Outcome] = []
    for i, (name, version) in enumerate(releases, 1):
        spec = f"{name}=={version}"
        started = time.monotonic()
        with console.status(f"[{i}/{len(releases)}] {spec}") as status:
            try:
                result = infer_one(
                    name,
                    version,
                    settings,
                    max_attempts=max_attempts,
                    progress=_status_line(status, f"[{i}/{len(releases)}] {spec}"),
                )
                outcome = Outcome(
                    spec,
                    "matched" if result.matched else "differs",
                    result.cause,
                    result.seconds,
                    _detail(result),
                )
            except InferError as exc:
                outcome = Outcome(spec, "failed", exc.cause, time.monotonic() - started, str(exc))
            except FarmError as exc:
                outcome = Outcome(
                    spec,
                    "failed",
                    f"error:{type(exc).__name__}",
                    time.monotonic() - started,
                    str(exc),
                )
        outcomes.append(outcome)
        colour = {"matched": "green", "differs": "yellow"}.get(outcome.status, "red")
        console.print(
            f"[{i}/{len(releases)}] {spec}: [{colour}]{outcome.status}[/]"
            + (f" ({outcome.cause})" if outcome.cause else "")
            + f" {outcome.seconds:.0f} s",
            highlight=False,
        )
    table = Table("release", "result", "cause", "s", "detail")
    for o in outcomes:
        table.add_row(o.spec, o.status, o.cause or "", f"{o.seconds:.0f}", o.detail[:120])
    console.print(table)
    typer.echo(json.dumps(summarize(outcomes)))
