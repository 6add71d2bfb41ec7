"""``farm bench api``: attestation queries and the coordinator's commit overhead.

1. Load: ``--attestations`` realistic attestations (every bundle really signed, with a
   verifying ledger receipt; see :mod:`farm.bench.api_load`) are stored through the
   coordinator's models in a fresh SQLite database and in a fresh PostgreSQL database
   (a scratch database on ``--postgres-url``'s server, dropped afterwards; without it,
   a throwaway local cluster, see :mod:`farm.coordinator.throwaway_pg`), which is then
   vacuumed and analyzed as autovacuum would have done (:func:`farm.bench.api_load.analyze`).
2. Query: a real ``farm serve`` on each database in turn answers ``GET
   /v1/attestations`` with each filter (name, name and version, architecture, artifact
   sha256, recipe digest, a page): ``query_p50_ms`` is the median latency of
   ``--queries`` sequential queries per filter over one keep-alive connection,
   ``query_p50_ms_by_filter`` the same per filter, ``query_per_s`` what ``--clients``
   concurrent keep-alive connections get through (see :mod:`farm.bench.api_query`);
   ``query_p50_ms_httpx`` is the latency an httpx client sees (its own CPU included).
   Those are SQLite's; the same workload's figures on PostgreSQL (through ``farm
   serve``'s connection pool) carry the suffix ``_postgres``.
3. Commit: on four ledger validators, Redis, three builders and ``farm serve
   --ledger``, ``--runs`` rounds, each three bare ``docker run --rm``s of a trivial
   recipe at once (same image, command, mounts and limits) and then the farm's build of
   it, timed from ``POST /v1/builds`` to its committed attestation;
   ``commit_overhead_s`` is the median of that time minus the median of the bare runs,
   ``commit_overhead_paired_s`` the median of each round's difference (see
   :mod:`farm.bench.api_commit`). One warm-up round runs first and is shown but not counted.

Prints tables to stderr; the last line on stdout is one JSON object.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from farm.bench.api_commit import BUILDERS, CommitRun, commit_farm, commit_overhead, timed_commit
from farm.bench.api_load import Loaded, analyze, bundle_size, make_attestations, store_attestations
from farm.bench.api_query import (
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
from farm.coordinator.throwaway_pg import scratch_database, server_url, throwaway_postgres
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


@contextmanager
def _postgres(url: str | None) -> Iterator[str]:
    """A fresh database on ``url``'s server, or on a throwaway local one; dropped after."""
    with ExitStack() as stack:
        if url is None:
            console.print("starting a throwaway PostgreSQL cluster")
            url = stack.enter_context(throwaway_postgres())
        yield stack.enter_context(scratch_database(url, prefix="farm_bench"))


def _load(count: int, workers: int, databases: dict[str, str]) -> Loaded:
    """Sign ``count`` attestations once; store them in every database of ``databases``."""
    with _progress() as progress:
        signing = progress.add_task("signing bundles", total=count)
        made, builders, _ = make_attestations(
            count, workers, lambda n: progress.advance(signing, n)
        )
        for label, db_url in databases.items():
            engine = make_engine(db_url)
            try:
                create_tables(engine)
                storing = progress.add_task(f"storing rows ({label})", total=count)
                loaded = store_attestations(
                    engine, made, builders, functools.partial(progress.advance, storing)
                )
                analyze(engine)
            finally:
                engine.dispose()
    console.print(
        f"{count} attestations of {len(loaded.by_name)} packages stored "
        f"(mean bundle {bundle_size(made) / 1000:.1f} kB, "
        f"{len(loaded.sha256s)} attested artifacts) in {', '.join(databases)}"
    )
    return loaded


def _query_phase(
    root: Path, label: str, db_url: str, loaded: Loaded, per_filter: int, clients: int
) -> dict[str, Any]:
    """The query figures of one database (see the module docstring), unsuffixed."""
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
        title=f"GET /v1/attestations on {label}, one query at a time",
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
    console.print(f"{label}: throughput with {clients} concurrent clients: {per_s:.0f} queries/s")
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
        console.print(
            f"  each round: {BUILDERS} bare docker runs at once, then the farm's build "
            f"on {BUILDERS} builders"
        )
        warm = timed_commit(farm, "0.0")
        console.print(
            f"  warm-up round: bare {warm.bare_s:.2f} s, farm {warm.total_s:.2f} s to commit"
        )
        for i in range(runs):
            measured.append(timed_commit(farm, f"1.{i}"))
            console.print(
                f"  round {i + 1}/{runs}: bare {measured[-1].bare_s:.2f} s, "
                f"farm {measured[-1].total_s:.2f} s to commit, "
                f"overhead {measured[-1].overhead_s:.2f} s"
            )
    runs_shown = [("warm-up", warm), *((f"run {i + 1}", r) for i, r in enumerate(measured))]
    table = Table("seconds after POST /v1/builds", *(label for label, _ in runs_shown))
    for stage in warm.stages:
        table.add_row(stage, *(f"{r.stages[stage]:.3f}" for _, r in runs_shown))
    table.add_section()
    table.add_row("build command (slowest)", *(f"{r.command_s:.3f}" for _, r in runs_shown))
    table.add_row("container (slowest)", *(f"{r.container_s:.3f}" for _, r in runs_shown))
    table.add_row(f"bare docker run --rm ×{BUILDERS}", *(f"{r.bare_s:.3f}" for _, r in runs_shown))
    table.add_row(
        "overhead (commit − bare)", *(f"{r.overhead_s:.3f}" for _, r in runs_shown), style="bold"
    )
    console.print(table)
    overhead, paired = commit_overhead(measured)
    return {
        "commit_overhead_s": round(overhead, 3),
        "commit_overhead_paired_s": round(paired, 3),
        "commit_total_s": round(statistics.median(r.total_s for r in measured), 3),
        "bare_run_s": round(statistics.median(r.bare_s for r in measured), 3),
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
    postgres_url: Annotated[
        str | None,
        typer.Option(
            "--postgres-url",
            metavar="URL",
            help="PostgreSQL server to query on too (postgresql+psycopg://user@host:port/db;"
            " the bench creates a scratch database there and drops it after, so the role"
            " needs CREATEDB). Default: a throwaway local cluster (initdb, pg_ctl).",
        ),
    ] = None,
) -> None:
    """Query latency and throughput over N stored attestations, and the commit overhead."""
    if postgres_url is not None:
        try:
            server_url(postgres_url)
        except FarmError as exc:
            raise typer.BadParameter(str(exc), param_hint="--postgres-url") from None
    root = Path(tempfile.mkdtemp(prefix="farm-bench-api-"))
    started = time.monotonic()
    try:
        result: dict[str, Any] = {"attestations": attestations}
        with _postgres(postgres_url) as pg_url:
            databases = {"SQLite": f"sqlite:///{root / 'attestations.db'}", "PostgreSQL": pg_url}
            console.print(f"[bold]1/3[/] loading {attestations} attestations into {root}")
            loaded = _load(attestations, workers, databases)
            console.print("[bold]2/3[/] querying them through farm serve, on each database")
            result.update(
                _query_phase(root, "SQLite", databases["SQLite"], loaded, queries, clients)
            )
            on_pg = _query_phase(root, "PostgreSQL", pg_url, loaded, queries, clients)
            result.update({f"{key}_postgres": value for key, value in on_pg.items()})
        console.print("[bold]3/3[/] trivial recipe from POST /v1/builds to a committed attestation")
        result.update(_commit_phase(root, runs))
    except BaseException:
        console.print(f"work directory kept: {root}")
        raise
    else:
        if keep:
            console.print(f"work directory kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    worst = {
        db: max(result[f"query_p50_ms_by_filter{suffix}"].values())
        for db, suffix in (("SQLite", ""), ("PostgreSQL", "_postgres"))
    }
    met_q = max(worst.values()) <= QUERY_TARGET_MS
    overhead = max(result["commit_overhead_s"], result["commit_overhead_paired_s"])
    met_c = overhead <= COMMIT_TARGET_S
    console.print(
        f"query p50 {result['query_p50_ms']:.2f} ms on SQLite, "
        f"{result['query_p50_ms_postgres']:.2f} ms on PostgreSQL; slowest filter "
        + ", ".join(f"{ms:.2f} ms on {db}" for db, ms in worst.items())
        + f" (target ≤ {QUERY_TARGET_MS:g} for every filter): "
        + ("[green]met[/]" if met_q else "[red]missed[/]")
        + f"; commit overhead over bare docker runs {result['commit_overhead_s']:.3f} s "
        f"(paired {result['commit_overhead_paired_s']:.3f} s; target ≤ {COMMIT_TARGET_S:g}): "
        + ("[green]met[/]" if met_c else "[red]missed[/]")
        + f"; {time.monotonic() - started:.0f} s in all"
    )
    result["query_filters"] = list(FILTERS)
    typer.echo(json.dumps(result))
