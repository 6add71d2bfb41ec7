"""``farm serve`` (the coordinator's API) and ``farm operator`` (tokens, approval);
``farm attestations`` and ``farm revoke`` come from ``farm.cli.attestation_cmd``.

The API itself lives in ``api.coordinator``; ``farm`` does not import ``api``, so
``serve`` hands uvicorn the factory by name.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from farm.cli import attestation_cmd

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True)
operator_app = typer.Typer(
    help="Operator tasks: enrollment tokens, operator tokens, approving builders.",
    no_args_is_help=True,
)
app.add_typer(operator_app, name="operator")
app.command("attestations")(attestation_cmd.attestations)
app.command("revoke")(attestation_cmd.revoke)

#: Same default as ``farm.coordinator.db`` (not imported here: it loads SQLAlchemy).
DEFAULT_DB_URL = "sqlite:///farm-coordinator.db"

DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="FARM_COORDINATOR_DB_URL",
        help="Work directly on this database (sqlite:///PATH or postgresql+psycopg://...).",
    ),
]
CoordinatorOpt = Annotated[
    str | None,
    typer.Option("--coordinator", envvar="FARM_COORDINATOR_URL", help="Coordinator API URL."),
]
OperatorTokenOpt = Annotated[
    str | None,
    typer.Option(
        "--operator-token",
        envvar="FARM_OPERATOR_TOKEN",
        help="Operator bearer token (for --coordinator).",
    ),
]


@app.command()
def serve(
    db: Annotated[
        str, typer.Option("--db", envvar="FARM_COORDINATOR_DB_URL", help="Database URL.")
    ] = DEFAULT_DB_URL,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8600,
    staging: Annotated[
        Path,
        typer.Option(
            "--staging", envvar="FARM_COORDINATOR_STAGING_DIR", help="Staging store directory."
        ),
    ] = Path("farm-staging"),
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    redis_url: Annotated[
        str | None,
        typer.Option(
            "--redis-url",
            envvar="FARM_COORDINATOR_REDIS_URL",
            help="The builders' broker; given, the scheduler runs builds to their verdict.",
        ),
    ] = None,
    allow_same_host: Annotated[
        bool,
        typer.Option(
            "--allow-same-host",
            help="Let two builders on one host build the same recipe (one-machine farms only).",
        ),
    ] = False,
    recipes_repo: Annotated[
        str | None,
        typer.Option(
            "--recipes-repo",
            envvar="FARM_COORDINATOR_RECIPES_REPO",
            help="Git repository of recipes to follow (path or URL).",
        ),
    ] = None,
    recipes_poll: Annotated[
        float | None,
        typer.Option("--recipes-poll", help="Seconds between polls of the recipe repository."),
    ] = None,
    ledger: Annotated[
        str | None,
        typer.Option(
            "--ledger",
            envvar="FARM_COORDINATOR_LEDGER_URLS",
            help="Ledger validators' HTTP URLs, comma-separated; given, approved builders "
            "are enrolled and verified builds attested on the ledger.",
        ),
    ] = None,
    coordinator_key: Annotated[
        Path | None,
        typer.Option(
            "--coordinator-key",
            envvar="FARM_COORDINATOR_COORDINATOR_KEY",
            help="The coordinator's signing key (public key in the ledger genesis).",
        ),
    ] = None,
    operator_key: Annotated[
        Path | None,
        typer.Option(
            "--operator-key",
            envvar="FARM_COORDINATOR_OPERATOR_KEY",
            help="An operator key of the ledger genesis (signs enroll transactions).",
        ),
    ] = None,
    ledger_chain: Annotated[
        str | None,
        typer.Option(
            "--ledger-chain",
            envvar="FARM_COORDINATOR_LEDGER_CHAIN",
            help="The ledger's chain id (chain_id in its genesis): operator transactions "
            "are signed for that chain only.",
        ),
    ] = None,
) -> None:
    """Run the coordinator: its REST API, and with --redis-url its scheduler (uvicorn).

    Other settings come from FARM_COORDINATOR_* (see farm.coordinator.settings), e.g.
    FARM_COORDINATOR_WEBHOOK_SECRET for the push webhook.
    """
    import uvicorn

    from farm.coordinator.db import create_tables, make_engine

    create_tables(make_engine(db))  # fail here, with one line, on an unusable URL
    os.environ["FARM_COORDINATOR_DB_URL"] = db
    os.environ["FARM_COORDINATOR_STAGING_DIR"] = str(staging)
    if redis_url:
        os.environ["FARM_COORDINATOR_REDIS_URL"] = redis_url
    if allow_same_host:
        os.environ["FARM_COORDINATOR_ALLOW_SAME_HOST"] = "true"
    if recipes_repo:
        os.environ["FARM_COORDINATOR_RECIPES_REPO"] = recipes_repo
    if recipes_poll is not None:
        os.environ["FARM_COORDINATOR_RECIPES_POLL"] = str(recipes_poll)
    if ledger:
        import re

        from farm.errors import ConfigError
        from farm.keys import load_key
        from farm.transactions import CHAIN_ID_PATTERN

        if coordinator_key is None or operator_key is None:
            raise ConfigError("--ledger needs --coordinator-key and --operator-key")
        if ledger_chain is None:
            raise ConfigError("--ledger needs --ledger-chain (the chain_id of the ledger genesis)")
        if not re.fullmatch(CHAIN_ID_PATTERN, ledger_chain):
            raise ConfigError(f"--ledger-chain {ledger_chain!r} is not a chain id")
        load_key(coordinator_key)  # fail here, with one line, on an unusable key
        load_key(operator_key)
        os.environ["FARM_COORDINATOR_LEDGER_URLS"] = ledger
        os.environ["FARM_COORDINATOR_COORDINATOR_KEY"] = str(coordinator_key.resolve())
        os.environ["FARM_COORDINATOR_OPERATOR_KEY"] = str(operator_key.resolve())
        os.environ["FARM_COORDINATOR_LEDGER_CHAIN"] = ledger_chain
    uvicorn.run(
        "api.coordinator:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        log_level=log_level,
    )


def _client(coordinator: str | None, operator_token: str | None):  # type: ignore[no-untyped-def]
    from farm.coordinator.client import CoordinatorClient
    from farm.errors import ConfigError

    if not coordinator:
        raise ConfigError("give --db DATABASE_URL or --coordinator URL (with --operator-token)")
    if not operator_token:
        raise ConfigError("--coordinator needs --operator-token (or $FARM_OPERATOR_TOKEN)")
    return CoordinatorClient(coordinator, operator_token=operator_token)


@operator_app.command("token")
def enrollment_token(
    db: DbOpt = None,
    coordinator: CoordinatorOpt = None,
    operator_token: OperatorTokenOpt = None,
    ttl: Annotated[int, typer.Option(help="Seconds the token stays valid.")] = 3600,
    note: Annotated[str, typer.Option(help="What the token is for (stored).")] = "",
) -> None:
    """Print a new one-time enrollment token (its secret is shown only now)."""
    if db:
        from farm.coordinator import service
        from farm.coordinator.db import create_tables, make_engine, session_scope
        from farm.coordinator.models import utcnow

        engine = make_engine(db)
        create_tables(engine)
        with session_scope(engine) as session:
            token = service.issue_enrollment_token(session, utcnow(), ttl_seconds=ttl, note=note)
        typer.echo(token.token)
        return
    typer.echo(_client(coordinator, operator_token).new_enrollment_token(ttl, note)["token"])


@operator_app.command("new-operator-token")
def new_operator_token(
    db: Annotated[
        str, typer.Option("--db", envvar="FARM_COORDINATOR_DB_URL", help="Database URL.")
    ],
    name: Annotated[str, typer.Option(help="Who the token is for.")] = "operator",
) -> None:
    """Create an operator bearer token directly in the database and print it once."""
    from farm.coordinator import service
    from farm.coordinator.db import create_tables, make_engine, session_scope
    from farm.coordinator.models import utcnow

    engine = make_engine(db)
    create_tables(engine)
    with session_scope(engine) as session:
        typer.echo(service.create_operator_token(session, utcnow(), name))


@operator_app.command()
def approve(
    builder_id: Annotated[str, typer.Argument(help="The builder's id (its key id).")],
    db: DbOpt = None,
    coordinator: CoordinatorOpt = None,
    operator_token: OperatorTokenOpt = None,
) -> None:
    """Approve an enrolled builder so it can be scheduled."""
    if db:
        from farm.coordinator import service
        from farm.coordinator.db import make_engine, session_scope
        from farm.coordinator.models import utcnow

        with session_scope(make_engine(db)) as session:
            service.approve(session, builder_id, utcnow())
    else:
        _client(coordinator, operator_token).approve(builder_id)
    typer.echo(f"approved {builder_id}")


def _reader(coordinator: str | None):  # type: ignore[no-untyped-def]
    from farm.coordinator.client import CoordinatorClient
    from farm.errors import ConfigError

    if not coordinator:
        raise ConfigError("give --coordinator URL (or $FARM_COORDINATOR_URL)")
    return CoordinatorClient(coordinator)


def _progress_table(builds: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    table = Table("build", "arch", "builder", "try", "state", "reason", title="builds")
    for b in builds:
        head = f"{b['id'][:12]} {b['status']}"
        attempts = b.get("attempts") or []
        if not attempts:
            table.add_row(head, b["arch"], "-", "-", b["status"], b.get("note") or "")
        for a in attempts:
            state = a["state"] + (f" → {a['replaced_by'][:12]}" if a.get("replaced_by") else "")
            table.add_row(
                head,
                b["arch"],
                a["builder_id"][:12],
                str(a["number"]),
                state,
                a.get("reason") or "",
            )
            head = ""
    return table


@app.command()
def submit(
    recipe: Annotated[Path, typer.Argument(help="The recipe file (YAML).", exists=True)],
    coordinator: CoordinatorOpt = None,
    operator_token: OperatorTokenOpt = None,
    arch: Annotated[
        list[str] | None, typer.Option("--arch", help="Only these architectures (repeatable).")
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the builders until the verdict.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds --wait waits at most.")] = 3600.0,
) -> None:
    """Ask the coordinator to build RECIPE; with --wait, exit 0 only if every arch is verified."""
    import time

    from rich.console import Console
    from rich.live import Live

    console = Console()
    client = _client(coordinator, operator_token)
    builds = client.request_build(recipe.read_text(encoding="utf-8"), arch or None)
    for b in builds:
        console.print(f"build {b['id']} of {b['name']} {b['version']} on {b['arch']} requested")
    if not wait:
        return
    ids = [b["id"] for b in builds]
    seen: dict[tuple[str, str, int], str] = {}
    deadline = time.monotonic() + timeout
    with Live(_progress_table(builds), console=console, auto_refresh=False) as live:
        while True:
            builds = [client.build(i) for i in ids]
            for b in builds:
                for a in b.get("attempts") or []:
                    key = (b["id"], a["builder_id"], a["number"])
                    if seen.get(key) != a["state"]:
                        seen[key] = a["state"]
                        why = f": {a['reason']}" if a.get("reason") else ""
                        live.console.print(
                            f"{b['arch']} builder {a['builder_id'][:12]}: {a['state']}{why}",
                            highlight=False,
                        )
            live.update(_progress_table(builds), refresh=True)
            if all(b["verdict"] is not None for b in builds) or time.monotonic() > deadline:
                break
            time.sleep(1.0)
    console.print()
    problems = []
    for b in builds:
        verdict = b["verdict"]
        if verdict is None:
            problems.append(f"{b['arch']}: no verdict after {timeout:.0f}s ({b['status']})")
            continue
        reason = str(verdict.get("reason") or b["status"])  # begins with the verdict's status
        console.print(f"{b['arch']}: {reason}", highlight=False)
        differ = [o["name"] for o in verdict.get("outputs", []) if o.get("upstream") == "differ"]
        if differ:
            console.print(
                f"{b['arch']}: differs from upstream: {', '.join(differ)} "
                f"(diffoscope: {client.http.base_url}v1/builds/{b['id']}/diffs)",
                highlight=False,
            )
        if b["status"] != "verified":
            problems.append(f"{b['arch']}: {b['status']}")
    if problems:
        from farm.errors import QuorumError

        raise QuorumError("; ".join(problems))


@app.command("builds")
def builds_cmd(
    coordinator: CoordinatorOpt = None,
    status: Annotated[str | None, typer.Option(help="Only builds in this status.")] = None,
    name: Annotated[str | None, typer.Option(help="Only builds of this recipe name.")] = None,
    verdict: Annotated[str | None, typer.Option(help="verified, disputed or failed.")] = None,
    limit: Annotated[int, typer.Option(help="How many (newest first).")] = 50,
) -> None:
    """List builds with their status and verdict."""
    from rich.console import Console
    from rich.table import Table

    page = _reader(coordinator).builds(status=status, name=name, verdict=verdict, limit=limit)
    table = Table("build", "recipe", "arch", "status", "retries", "created", "reason")
    for b in page["items"]:
        table.add_row(
            b["id"][:12],
            f"{b['name']} {b['version']}",
            b["arch"],
            b["status"],
            str(b["retries"]),
            b["created_at"][:19],
            b.get("verdict_reason") or b.get("note") or "",
        )
    Console().print(table)
    Console().print(f"{len(page['items'])} of {page['total']} builds")


@app.command("builders")
def builders_cmd(coordinator: CoordinatorOpt = None) -> None:
    """List enrolled builders: architectures, last seen, builds done, agreement rate."""
    from rich.console import Console
    from rich.table import Table

    table = Table("builder", "host", "arches", "approved", "last seen", "builds", "agreement")
    for b in _reader(coordinator).builders():
        rate = b.get("agreement_rate")
        table.add_row(
            b["id"][:16],
            b["hostname"],
            ",".join(b["arches"]),
            "yes" if b["approved"] else "no",
            (b.get("last_seen") or "-")[:19],
            str(b["builds_done"]),
            "-" if rate is None else f"{rate:.0%}",
        )
    Console().print(table)
