"""``farm bench api``: attestation queries and the coordinator's commit overhead.

1. Load: ``--attestations`` realistic attestations (every bundle really signed, with a
   verifying ledger receipt; see :mod:`api.bench_load`) are stored in a fresh SQLite
   coordinator database through the coordinator's models.
2. Query: a real ``farm serve`` answers ``GET /v1/attestations`` with each filter
   (name, name and version, architecture, artifact sha256, recipe digest, a page):
   ``query_p50_ms`` is the median latency of ``--queries`` sequential queries per
   filter over one keep-alive connection, ``query_per_s`` what ``--clients``
   concurrent keep-alive connections get through (see :mod:`api.bench_query`);
   ``query_p50_ms_httpx`` is the latency an httpx client sees (its own CPU included).
3. Commit: on four ledger validators, Redis, three builders and ``farm serve
   --ledger``, ``--runs`` builds of a trivial recipe, each timed from ``POST
   /v1/builds`` to its committed attestation; ``commit_overhead_s`` is the median of
   that time minus the slowest builder's container time (see :mod:`api.bench_commit`).
   One warm-up build runs first and is shown but not counted.

Prints tables to stderr; the last line on stdout is one JSON object.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from api.bench_commit import CommitRun, commit_farm, median_overhead, timed_commit
from api.bench_load import Loaded, bundle_size, make_attestations, store_attestations
from api.bench_query import (
    FILTERS,
    WARMUP,
    cpu_seconds,
    farm_serve,
    make_queries,
    run_latency,
    run_latency_httpx,
    run_throughput,
)
from farm.coordinator.db import create_tables, make_engine
from farm.errors import FarmError

__all__ = ["bench_api"]

console = Console(stderr=True)

QUERY_TARGET_MS = 10.0
COMMIT_TARGET_S = 1.0


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def _load(root: Path, count: int, workers: int) -> tuple[str, Loaded]:
    db_url = f"sqlite:///{root / 'attestations.db'}"
    engine = make_engine(db_url)
    create_tables(engine)
    with _progress() as progress:
        signing = progress.add_task("signing bundles", total=count)
        made, builders, _ = make_attestations(
            count, workers, lambda n: progress.advance(signing, n)
        )
        storing = progress.add_task("storing rows", total=count)
        loaded = store_attestations(engine, made, builders, lambda n: progress.advance(storing, n))
    console.print(
        f"{count} attestations of {len(loaded.by_name)} packages stored "
        f"(mean bundle {bundle_size(made) / 1000:.1f} kB, "
        f"{len(loaded.sha256s)} attested artifacts)"
    )
    engine.dispose()
    return db_url, loaded


def _query_phase(
    root: Path, db_url: str, loaded: Loaded, per_filter: int, clients: int
) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARM_")}
    queries = make_queries(loaded, per_filter)
    with farm_serve(db_url, root, env) as served:
        url = served.url
        console.print(f"{len(queries)} sequential queries ({per_filter} per filter)…")
        cpu_before = cpu_seconds(served.pid)
        stats = run_latency(url, queries)
        # The server's own CPU per query: what the latency is made of on an idle core.
        cpu_ms = (cpu_seconds(served.pid) - cpu_before) * 1000 / (len(queries) + WARMUP)
        console.print("the same through an httpx client…")
        via_httpx = {s.kind: s for s in run_latency_httpx(url, queries)}
        console.print(f"{len(queries)} queries over {clients} concurrent connections…")
        per_s = run_throughput(url, make_queries(loaded, per_filter, seed=2), clients)
    every = [ms for s in stats for ms in s.latencies_ms]
    every_httpx = [ms for s in via_httpx.values() for ms in s.latencies_ms]
    table = Table(
        "filter", "queries", "p50 ms", "p99 ms", "max ms", "httpx p50 ms",
        title="GET /v1/attestations, one query at a time",
    )  # fmt: skip
    for s in stats:
        table.add_row(
            s.kind, str(len(s.latencies_ms)), f"{s.p50:.2f}", f"{s.p99:.2f}",
            f"{max(s.latencies_ms):.2f}", f"{via_httpx[s.kind].p50:.2f}",
        )  # fmt: skip
    table.add_row(
        "all", str(len(every)), f"{statistics.median(every):.2f}", "", f"{max(every):.2f}",
        f"{statistics.median(every_httpx):.2f}", style="bold",
    )  # fmt: skip
    console.print(table)
    console.print(f"throughput with {clients} concurrent clients: {per_s:.0f} queries/s")
    console.print(
        f"farm serve used {cpu_ms:.2f} ms of CPU per sequential query "
        f"(load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    return {
        "query_p50_ms": round(statistics.median(every), 3),
        "query_per_s": round(per_s, 1),
        "query_p50_ms_by_filter": {s.kind: round(s.p50, 3) for s in stats},
        "query_p50_ms_httpx": round(statistics.median(every_httpx), 3),
        "query_server_cpu_ms": round(cpu_ms, 3),
        "load_average": round(os.getloadavg()[0], 2),
    }


def _commit_phase(root: Path, runs: int) -> dict[str, Any]:
    measured: list[CommitRun] = []
    with commit_farm(root, lambda m: console.print(f"  {m}")) as farm:
        warm = timed_commit(farm, "0.0")
        console.print(f"  warm-up build: {warm.total_s:.2f} s, overhead {warm.overhead_s:.2f} s")
        for i in range(runs):
            measured.append(timed_commit(farm, f"1.{i}"))
            console.print(
                f"  build {i + 1}/{runs}: {measured[-1].total_s:.2f} s to commit, "
                f"overhead {measured[-1].overhead_s:.2f} s"
            )
    runs_shown = [("warm-up", warm), *((f"run {i + 1}", r) for i, r in enumerate(measured))]
    table = Table("seconds after POST /v1/builds", *(label for label, _ in runs_shown))
    for stage in warm.stages:
        table.add_row(stage, *(f"{r.stages[stage]:.3f}" for _, r in runs_shown))
    table.add_section()
    table.add_row("build command (slowest)", *(f"{r.command_s:.3f}" for _, r in runs_shown))
    table.add_row("container (slowest)", *(f"{r.container_s:.3f}" for _, r in runs_shown))
    table.add_row("overhead", *(f"{r.overhead_s:.3f}" for _, r in runs_shown), style="bold")
    console.print(table)
    overhead = median_overhead(measured)
    return {
        "commit_overhead_s": round(overhead, 3),
        "commit_total_s": round(statistics.median(r.total_s for r in measured), 3),
        "container_s": round(statistics.median(r.container_s for r in measured), 3),
        "build_command_s": round(statistics.median(r.command_s for r in measured), 3),
        "commit_runs": runs,
    }


def bench_api(
    attestations: Annotated[
        int, typer.Option("--attestations", min=10, help="Attestations to load.")
    ] = 10_000,
    queries: Annotated[
        int, typer.Option("--queries", min=5, help="Sequential queries per filter.")
    ] = 200,
    clients: Annotated[
        int, typer.Option("--clients", min=1, help="Concurrent clients for queries/s.")
    ] = 4,
    runs: Annotated[
        int, typer.Option("--runs", min=1, help="Timed builds for the commit overhead.")
    ] = 5,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Processes that sign the bundles.")
    ] = max(1, os.cpu_count() or 1),
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the work directory (databases, logs).")
    ] = False,
) -> None:
    """Query latency and throughput over N stored attestations, and the commit overhead."""
    root = Path(tempfile.mkdtemp(prefix="farm-bench-api-"))
    started = time.monotonic()
    try:
        console.print(f"[bold]1/3[/] loading {attestations} attestations into {root}")
        db_url, loaded = _load(root, attestations, workers)
        console.print("[bold]2/3[/] querying them through farm serve")
        result = {
            "attestations": attestations,
            **_query_phase(root, db_url, loaded, queries, clients),
        }
        console.print("[bold]3/3[/] trivial recipe from POST /v1/builds to a committed attestation")
        result.update(_commit_phase(root, runs))
    except FarmError as exc:
        console.print(f"[red]error:[/] {exc}  (work directory kept: {root})")
        raise typer.Exit(1) from None
    except BaseException:
        console.print(f"work directory kept: {root}")
        raise
    else:
        if keep:
            console.print(f"work directory kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    met_q = result["query_p50_ms"] <= QUERY_TARGET_MS
    met_c = result["commit_overhead_s"] <= COMMIT_TARGET_S
    console.print(
        f"query p50 {result['query_p50_ms']:.2f} ms (target ≤ {QUERY_TARGET_MS:g}): "
        + ("[green]met[/]" if met_q else "[red]missed[/]")
        + f"; commit overhead {result['commit_overhead_s']:.3f} s (target ≤ "
        f"{COMMIT_TARGET_S:g}): "
        + ("[green]met[/]" if met_c else "[red]missed[/]")
        + f"; {time.monotonic() - started:.0f} s in all"
    )
    result["query_filters"] = list(FILTERS)
    typer.echo(json.dumps(result))
