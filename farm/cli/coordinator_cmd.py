"""``farm serve`` (the coordinator's API) and ``farm operator`` (tokens, approval and
retirement, signed here with the operator key: the coordinator holds none);
``farm attestations`` and ``farm revoke`` come from ``farm.cli.attestation_cmd``.

The API itself lives in ``api.coordinator.app``; ``farm`` does not import ``api``, so
``serve`` hands uvicorn the factory by name.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from farm.cli import _tables, attestation_cmd
from farm.cli._operator import DomainOpt, GenesisOpt, KeyOpt, load_operator
from farm.logs import LogFormat, LogFormatOption
from farm.tls import TlsCertOption, TlsKeyOption

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True)
operator_app = typer.Typer(
    help="Operator tasks: enrollment tokens, operator tokens, approving and retiring "
    "builders (signed here with the operator key).",
    no_args_is_help=True,
)
app.add_typer(operator_app, name="operator")
app.command("attestations")(attestation_cmd.attestations)
app.command("revoke")(attestation_cmd.revoke)

#: Characters of a commit sha shown by default (as ``git log --oneline`` does).
COMMIT_SHORT = 8

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
    log_level: Annotated[str, typer.Option(help="Log level (also uvicorn's).")] = "info",
    log_format: LogFormatOption = LogFormat.text,
    tls_cert: TlsCertOption = None,
    tls_key: TlsKeyOption = None,
    redis_url: Annotated[
        str | None,
        typer.Option(
            "--redis-url",
            envvar="FARM_COORDINATOR_REDIS_URL",
            help="The builders' broker; given, the scheduler runs builds to their verdict.",
        ),
    ] = None,
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
            help="The coordinator's signing key (public key in the ledger genesis); it "
            "signs attestations and every build task (needed with --redis-url).",
        ),
    ] = None,
    ledger_chain: Annotated[
        str | None,
        typer.Option(
            "--ledger-chain",
            envvar="FARM_COORDINATOR_LEDGER_CHAIN",
            help="The ledger's chain id (chain_id in its genesis): only operator "
            "transactions signed for that chain are relayed (the coordinator signs none).",
        ),
    ] = None,
    genesis: Annotated[
        Path | None,
        typer.Option(
            "--genesis",
            envvar="FARM_COORDINATOR_GENESIS",
            help="The ledger's genesis file (needed with --ledger): a validator's receipt "
            "counts only under a checkpoint 2f+1 of its validators co-signed.",
        ),
    ] = None,
) -> None:
    """Run the coordinator: its REST API, and with --redis-url its scheduler (uvicorn).

    Other settings come from FARM_COORDINATOR_* (see farm.coordinator.settings), e.g.
    FARM_COORDINATOR_WEBHOOK_SECRET for the push webhook. Serves GET /healthz, /readyz
    (database, broker, a validator) and /metrics (Prometheus) beside the API.
    """
    import uvicorn

    from farm.coordinator.db import create_tables, make_engine
    from farm.errors import ConfigError
    from farm.logs import Service, setup_logging
    from farm.tls import server_tls

    try:
        setup_logging(Service.coordinator, log_format, log_level)
    except ValueError as exc:
        raise ConfigError(f"--log-level: {exc}") from None
    tls = server_tls(tls_cert, tls_key)
    create_tables(make_engine(db))  # fail here, with one line, on an unusable URL
    os.environ["FARM_COORDINATOR_DB_URL"] = db
    os.environ["FARM_COORDINATOR_STAGING_DIR"] = str(staging)
    if redis_url:
        from farm.keys import load_key

        if coordinator_key is None:
            raise ConfigError(
                "--redis-url needs --coordinator-key: the scheduler signs every build task "
                "with it and builders run no other (ADR 41)"
            )
        load_key(coordinator_key)  # fail here, with one line, on an unusable key
        os.environ["FARM_COORDINATOR_REDIS_URL"] = redis_url
        os.environ["FARM_COORDINATOR_COORDINATOR_KEY"] = str(coordinator_key.resolve())
    if recipes_repo:
        os.environ["FARM_COORDINATOR_RECIPES_REPO"] = recipes_repo
    if recipes_poll is not None:
        os.environ["FARM_COORDINATOR_RECIPES_POLL"] = str(recipes_poll)
    if ledger:
        import re

        from farm.keys import load_key
        from farm.transactions import CHAIN_ID_PATTERN

        if coordinator_key is None:
            raise ConfigError("--ledger needs --coordinator-key")
        if ledger_chain is None:
            raise ConfigError("--ledger needs --ledger-chain (the chain_id of the ledger genesis)")
        if not re.fullmatch(CHAIN_ID_PATTERN, ledger_chain):
            raise ConfigError(f"--ledger-chain {ledger_chain!r} is not a chain id")
        load_key(coordinator_key)  # fail here, with one line, on an unusable key
        if genesis is None:
            raise ConfigError("--ledger needs --genesis (the ledger's genesis file)")
        from farm.genesis import Genesis, load_genesis

        if load_genesis(genesis, Genesis).chain_id != ledger_chain:
            raise ConfigError(f"--genesis {genesis} is not the genesis of chain {ledger_chain!r}")
        os.environ["FARM_COORDINATOR_GENESIS"] = str(genesis.resolve())
        os.environ["FARM_COORDINATOR_LEDGER_URLS"] = ledger
        os.environ["FARM_COORDINATOR_COORDINATOR_KEY"] = str(coordinator_key.resolve())
        os.environ["FARM_COORDINATOR_LEDGER_CHAIN"] = ledger_chain
    uvicorn.run(
        "api.coordinator.app:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        log_level=log_level,
        log_config=None,  # its lines go through the handler set up above (farm.logs)
        **tls,  # type: ignore[arg-type]
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
    domain: DomainOpt,
    key: KeyOpt = None,
    genesis: GenesisOpt = None,
    db: DbOpt = None,
    coordinator: CoordinatorOpt = None,
    operator_token: OperatorTokenOpt = None,
) -> None:
    """Approve an enrolled builder in an independence domain so it can be scheduled.

    With --key and --genesis (needed when the coordinator has a ledger) the enroll
    transaction is signed here, with the operator key, from the pending enrollment the
    coordinator shows, and the coordinator relays it to the validators.
    """
    from farm.errors import ConfigError

    operator = None if key is None and genesis is None else load_operator(key, genesis, "approve")
    if db:
        from farm.coordinator import service
        from farm.coordinator.db import make_engine, session_scope
        from farm.coordinator.models import utcnow
        from farm.transactions import EnrollTx, decode_tx

        with session_scope(make_engine(db)) as session:
            if operator is None:
                service.approve(session, builder_id, utcnow(), domain)
            else:
                shown = service.get_builder(session, builder_id).model_dump()
                tx = operator.enroll(builder_id, shown, domain)
                decoded = decode_tx(tx)
                assert isinstance(decoded, EnrollTx)
                service.approve(
                    session, builder_id, utcnow(), domain, enroll_tx=decoded, enroll_bytes=tx
                )
    else:
        client = _client(coordinator, operator_token)
        if operator is None:
            client.approve(builder_id, domain)
        else:
            shown = client.builder(builder_id)
            if shown.get("ledger_index") is not None:
                raise ConfigError(f"builder {builder_id[:12]} is already enrolled on the ledger")
            client.approve(builder_id, domain, operator.enroll(builder_id, shown, domain))
    typer.echo(f"approved {builder_id} in domain {domain}")


@operator_app.command()
def retire(
    builder_id: Annotated[str, typer.Argument(help="The builder's id (its key id).")],
    reason: Annotated[str, typer.Option(help="Why (recorded on the ledger).")] = (
        "retired by the operator"
    ),
    key: KeyOpt = None,
    genesis: GenesisOpt = None,
    coordinator: CoordinatorOpt = None,
    operator_token: OperatorTokenOpt = None,
) -> None:
    """Retire a builder: no longer scheduled, its results refused. A builder enrolled on
    the ledger is retired there by a retire transaction signed here with --key."""
    client = _client(coordinator, operator_token)
    shown = client.builder(builder_id)
    tx = None
    if shown.get("ledger_index") is not None:
        tx = load_operator(key, genesis, "retire").retire(builder_id, reason)
    client.retire(builder_id, reason, tx)
    typer.echo(f"retired {builder_id}")


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
    """Ask the coordinator to build RECIPE; with --wait, exit 0 only if every arch is verified.

    --wait follows each build as the coordinator changes it (a long-poll per build).
    """
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
    with Live(_progress_table(builds), console=console, auto_refresh=False) as live:
        for builds in client.follow_builds(ids, timeout):
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
            diffs = client.url(f"/v1/builds/{b['id']}/diffs")
            console.print(
                f"{b['arch']}: differs from upstream: {', '.join(differ)} (diffoscope: {diffs})",
                highlight=False,
            )
        if b["status"] != "verified":
            problems.append(f"{b['arch']}: {b['status']}")
    if problems:
        from farm.errors import QuorumError

        raise QuorumError("; ".join(problems))


def _upstream(build: dict[str, Any]) -> str:
    match build.get("upstream_matches"):
        case True:
            return "matches"
        case False:
            return "differs"
        case _:
            return "-"


@app.command("builds")
def builds_cmd(
    coordinator: CoordinatorOpt = None,
    status: Annotated[str | None, typer.Option(help="Only builds in this status.")] = None,
    name: Annotated[str | None, typer.Option(help="Only builds of this recipe name.")] = None,
    verdict: Annotated[str | None, typer.Option(help="verified, disputed or failed.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="How many (newest first).")] = 50,
    wide: _tables.WideOpt = False,
    as_json: _tables.JsonOpt = False,
) -> None:
    """List builds with their status, verdict and whether the rebuild matches upstream.

    A build the recipe follower asked for shows the commit that brought its recipe
    (``@`` and a short sha after the recipe). --wide adds the verdict's reason, retries,
    origin and that commit, with full ids and times.
    """
    page = _reader(coordinator).builds(status=status, name=name, verdict=verdict, limit=limit)
    if as_json:
        _tables.echo_json(page)
        return
    columns = ["build", "recipe", "arch", "status", "upstream", "created"]
    if wide:
        columns += ["retries", "origin", "commit", "reason"]
    table = _tables.table(*columns, wide=wide)
    for b in page["items"]:
        commit = b.get("commit")
        row = [
            b["id"] if wide else _tables.short(b["id"]),
            f"{b['name']} {b['version']}" + (f" @{commit[:COMMIT_SHORT]}" if commit else ""),
            b["arch"],
            b["status"],
            _upstream(b),
            _tables.when(b["created_at"]) if wide else _tables.ago(b["created_at"]),
        ]
        if wide:
            reason = b.get("verdict_reason") or b.get("note") or ""
            row += [str(b["retries"]), b["origin"], commit or "-", reason]
        table.add_row(*row)
    console = _tables.show(table, wide=wide)
    console.print(f"{len(page['items'])} of {page['total']} builds", highlight=False)


@app.command("recipes")
def recipes_cmd(
    coordinator: CoordinatorOpt = None,
    wide: _tables.WideOpt = False,
    as_json: _tables.JsonOpt = False,
) -> None:
    """List the recipes of the repository the coordinator follows, with their status.

    scheduled: a build exists for the recipe's digest (its latest verdict is shown);
    lint_failed: the file does not lint clean; refused_changed: the file changes an
    attested name and version in place (a new version needs a new file). The problems
    of each follow the table. --wide adds full digests, commits and times.
    """
    recipes = _reader(coordinator).recipes()
    if as_json:
        _tables.echo_json(recipes)
        return
    columns = ["recipe", "status", "verdict", "commit"]
    if wide:
        columns += ["path", "digest", "seen"]
    table = _tables.table(*columns, wide=wide)
    for r in recipes:
        label = f"{r['name']} {r['version']}" if r.get("name") else r["path"]
        row = [
            label,
            r["status"],
            r.get("last_verdict") or "-",
            r["commit"] if wide else r["commit"][:COMMIT_SHORT],
        ]
        if wide:
            row += [r["path"], r.get("digest") or "-", _tables.when(r["seen_at"])]
        table.add_row(*row)
    console = _tables.show(table, wide=wide)
    for r in recipes:
        for problem in r.get("problems") or []:
            console.print(f"{r['path']}: {problem}", highlight=False, soft_wrap=True)
    console.print(f"{len(recipes)} recipes", highlight=False)


@app.command("builders")
def builders_cmd(
    coordinator: CoordinatorOpt = None,
    wide: _tables.WideOpt = False,
    as_json: _tables.JsonOpt = False,
) -> None:
    """List enrolled builders: architectures, last seen, builds done, agreement rate.

    --wide adds when each was enrolled and its enroll transaction on the ledger, with full
    ids and times.
    """
    builders = _reader(coordinator).builders()
    if as_json:
        _tables.echo_json(builders)
        return
    columns = ["builder", "host", "arches", "approved", "last seen", "agreed"]
    if wide:
        columns += ["enrolled", "ledger"]
    table = _tables.table(*columns, wide=wide)
    for b in builders:
        rate = b.get("agreement_rate")
        agreed = f"{b['agreements']}/{b['builds_done']}"
        row = [
            b["id"] if wide else _tables.short(b["id"]),
            b["hostname"],
            ",".join(b["arches"]),
            "yes" if b["approved"] else "no",
            _tables.when(b.get("last_seen")) if wide else _tables.ago(b.get("last_seen")),
            agreed if rate is None else f"{agreed} {rate:.0%}",
        ]
        if wide:
            index, error = b.get("ledger_index"), b.get("ledger_error")
            ledger = (
                f"index {index}" if index is not None else f"refused: {error}" if error else "-"
            )
            row += [_tables.when(b.get("enrolled_at")), ledger]
        table.add_row(*row)
    _tables.show(table, wide=wide)
