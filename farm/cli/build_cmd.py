"""``farm build``: rebuild a recipe on N distinct running builders and show whether they agree."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from farm.agreement import AgreementRow, agreement_rows
from farm.cross_arch import CrossArch, compare_arches, require_cross_arch
from farm.dispatch import BuilderRun, collect, dispatch
from farm.errors import QuorumError
from farm.quorum import Tally, require_quorum, tally
from farm.recipe import Recipe

if TYPE_CHECKING:
    from celery import Celery

    from farm.keys import KeyPair
    from farm.registry import BuilderInfo
    from farm.result import SignedResult

__all__ = ["build", "default_wait", "run_builds"]

console = Console()

_STATE_STYLE = {
    "QUEUED": "dim",
    "BUILDING": "yellow",
    "RETRYING": "yellow",
    "DONE": "green",
    "FAILED": "red",
    "ERROR": "red",
    "REFUSED": "bold red",
}


def _progress_table(runs: Sequence[BuilderRun], arch: str) -> Table:
    import time

    table = Table("builder", "arch", "state", "time", "note", title="builds", title_justify="left")
    for run in runs:
        elapsed = (run.ended or time.monotonic()) - run.started
        style = _STATE_STYLE.get(run.state, "")
        table.add_row(
            run.builder.builder_id[:12],
            arch,
            f"[{style}]{run.state}[/]",
            f"{elapsed:5.1f}s",
            run.error or "",
        )
    return table


def default_wait(recipe: Recipe) -> float:
    """Seconds ``farm build`` waits for results unless told: the recipe's timeout + 5 min."""
    return recipe.limits.timeout + 300


def run_builds(
    app: Celery,
    recipe: Recipe,
    arch: str,
    builders: Sequence[BuilderInfo],
    build_id: str,
    wait: float,
    signer: KeyPair,
    *,
    out: Console = console,
) -> list[BuilderRun]:
    """Queue ``recipe`` for ``arch`` on ``builders`` and wait up to ``wait`` seconds for
    their results, showing a live progress table on ``out``; open runs stay open. Each
    task is signed with ``signer``, the coordinator key the builders trust (ADR 41).

    ``farm build`` does exactly this per architecture, and ``farm bench build`` times it.
    The wait wakes on each stored task state (:func:`farm.dispatch.collect`); the table
    also refreshes by itself, so its clocks run between states.
    """
    runs = dispatch(app, recipe, arch, builders, build_id, signer)
    with Live(
        console=out, refresh_per_second=4, get_renderable=lambda: _progress_table(runs, arch)
    ) as live:
        collect(runs, wait, lambda _runs: live.refresh())
    if not out.is_terminal:
        out.line()  # Live ends its last table with a newline on terminals only
    return runs


def _agreement_table(
    rows: list[AgreementRow], builders: Sequence[str], t: Tally, arch: str
) -> Table:
    table = Table(title=f"agreement ({arch}): {t.verdict}", title_justify="left")
    table.add_column("output")
    for b in builders:
        table.add_column(b[:12])
    table.add_column("upstream")
    for row in rows:
        cells = []
        for c in row.cells:
            if c.state == "agree":
                cells.append(f"[green]✓ {c.sha256[:12] if c.sha256 else ''}[/]")
            elif c.state == "differ":
                cells.append(f"[bold red]✗ {c.sha256[:12] if c.sha256 else 'absent'}[/]")
            else:
                cells.append(f"[red]{c.state}[/]")
        up = {"match": "[green]matches[/]", "differ": "[yellow]differs[/]", "none": "[dim]—[/]"}
        cells.append(up[row.upstream_state])
        table.add_row(row.output, *cells)
    return table


def _variation(result: SignedResult | None) -> dict[str, object] | None:
    """What a builder's build ran under, as its signed result says (ADR 38)."""
    if result is None or result.predicate.variation is None:
        return None
    return result.predicate.variation.model_dump(mode="json")


def _report_arch(
    recipe: Recipe, arch: str, runs: Sequence[BuilderRun], count: int, wait: float
) -> tuple[dict[str, object], str | None, dict[str, str] | None]:
    """Print one architecture's tables; return its JSON report, its problem, if any, and
    the outputs its builders agreed on (None unless verified)."""
    for run in runs:
        if not run.done:
            run.state, run.error = "MISSING", f"no result within {wait:.0f}s"
    results = [r.result for r in runs if r.result is not None]
    ids = [r.builder.builder_id for r in runs]
    t = tally(results, quorum=count, expected=ids)
    rows = agreement_rows(recipe, results, ids, t, arch)
    console.print()
    console.print(_agreement_table(rows, ids, t, arch))
    for run in runs:
        if run.state != "DONE":
            console.print(
                f"[red]{run.builder.builder_id[:12]}[/]: {run.state}: {run.error}",
                highlight=False,
            )
            if run.log_tail:
                console.print(Text(run.log_tail[-2000:], style="dim"))
    problem = None
    if not (t.verdict == "verified" and all(r.agreed for r in rows)):
        try:
            require_quorum(t)
            problem = f"{arch}: builders do not agree (see the table above)"
        except QuorumError as exc:
            problem = f"{arch}: {exc}"
    report: dict[str, object] = {
        "verdict": t.verdict,
        "builders": {
            r.builder.builder_id: {
                "state": r.state,
                "error": r.error,
                "outputs": r.result.digest_set() if r.result else None,
                "variation": _variation(r.result),
            }
            for r in runs
        },
        "upstream": {row.output: row.upstream_state for row in rows},
    }
    top = t.majority
    agreed = dict(top.digests) if t.verdict == "verified" and top is not None else None
    return report, problem, agreed


def _cross_arch(agreed: dict[str, dict[str, str] | None]) -> tuple[CrossArch, str | None]:
    """Compare the pure wheels the architectures agreed on; print the outcome."""
    cross = compare_arches(agreed)
    if cross.verdict == "not_applicable":
        return cross, None
    console.print()
    for o in cross.outputs:
        mark = "[green]identical[/]" if o.agreed else "[bold red]differs[/]"
        console.print(f"cross-architecture ({', '.join(cross.arches)}): {mark} {o.describe()}")
    try:
        require_cross_arch(cross)
    except QuorumError as exc:
        return cross, str(exc)
    return cross, None


def build(
    recipe_path: Annotated[Path, typer.Argument(metavar="RECIPE", help="A recipe file.")],
    builders: Annotated[
        int | None, typer.Option("--builders", "-n", help="Distinct builders (default: quorum).")
    ] = None,
    arch: Annotated[
        list[str] | None,
        typer.Option("--arch", help="Architecture(s) (default: all of the recipe's)."),
    ] = None,
    redis_url: Annotated[
        str, typer.Option("--redis-url", envvar="FARM_REDIS_URL", help="Redis URL.")
    ] = "redis://127.0.0.1:6379/0",
    timeout: Annotated[
        float | None,
        typer.Option(help="Seconds to wait for results (default: recipe timeout + 5 min)."),
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the results and verdict as JSON here.")
    ] = None,
    coordinator_key: Annotated[
        Path | None,
        typer.Option(
            "--coordinator-key",
            envvar="FARM_COORDINATOR_KEY",
            help="The coordinator key the builders trust: every task is signed with it "
            "(required; builders run no unsigned task).",
        ),
    ] = None,
) -> None:
    """Send RECIPE to distinct running builders, verify each signed result, print who agrees.

    Each architecture is its own build (its own build id) on builders that can build it.
    With several architectures, a pure (none-any) wheel must also be byte-identical
    across them. Exits 0 only when every chosen builder produced identical outputs and
    no pure wheel differs between architectures.
    """
    import uuid

    import redis

    from farm.errors import ConfigError
    from farm.keys import load_key
    from farm.queue import make_celery
    from farm.recipe import load_recipe
    from farm.registry import list_builders, pick_builders

    if coordinator_key is None:
        raise ConfigError(
            "--coordinator-key is needed: builders run only tasks signed by the coordinator "
            "key they are configured with (ADR 41)"
        )
    signer = load_key(coordinator_key)
    recipe = load_recipe(recipe_path)
    count = builders or recipe.quorum
    arches = arch or list(recipe.architectures)
    for a in arches:
        if a not in recipe.architectures:
            raise ConfigError(
                f"{recipe.label} is not built for {a} (it lists {', '.join(recipe.architectures)})"
            )
    client = redis.Redis.from_url(redis_url)
    try:
        running = list_builders(client)
    except redis.RedisError as exc:
        raise ConfigError(f"cannot reach Redis at {redis_url}: {exc}") from None
    chosen = {a: pick_builders(running, a, count) for a in arches}
    app = make_celery(redis_url)
    # One build id per architecture: a builder that builds both answers a task by its
    # build id, so a shared one would hand arm64 the amd64 result it already has.
    build_ids = {a: uuid.uuid4().hex for a in arches}
    for a in arches:
        console.print(
            f"build [bold]{build_ids[a]}[/] of {recipe.label} ({recipe.digest}) on {a}",
            highlight=False,
        )
    wait = timeout if timeout is not None else default_wait(recipe)
    report: dict[str, object] = {
        "build_ids": build_ids,
        "recipe": recipe.label,
        "recipe_digest": recipe.digest,
        "arches": {},
    }
    problems: list[str] = []
    arch_reports: dict[str, object] = {}
    agreed: dict[str, dict[str, str] | None] = {}
    for a in arches:
        runs = run_builds(app, recipe, a, chosen[a], build_ids[a], wait, signer)
        arch_reports[a], problem, agreed[a] = _report_arch(recipe, a, runs, count, wait)
        if problem:
            problems.append(problem)
    report["arches"] = arch_reports
    cross, problem = _cross_arch(agreed)
    report["cross_arch"] = cross.to_json()
    if problem:
        problems.append(problem)
    if json_out is not None:
        json_out.write_text(json.dumps(report, indent=2))
    if problems:
        raise QuorumError("; ".join(problems) or "builders do not agree (see the table above)")
    console.print(f"[bold green]all {count} builders agree bit for bit[/]", highlight=False)
