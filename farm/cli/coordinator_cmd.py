"""``farm serve`` (the coordinator's API) and ``farm operator`` (tokens, approval).

The API itself lives in ``api.coordinator``; ``farm`` does not import ``api``, so
``serve`` hands uvicorn the factory by name.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True)
operator_app = typer.Typer(
    help="Operator tasks: enrollment tokens, operator tokens, approving builders.",
    no_args_is_help=True,
)
app.add_typer(operator_app, name="operator")

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
) -> None:
    """Run the coordinator's REST API (uvicorn) until stopped."""
    import uvicorn

    from farm.coordinator.db import create_tables, make_engine

    create_tables(make_engine(db))  # fail here, with one line, on an unusable URL
    os.environ["FARM_COORDINATOR_DB_URL"] = db
    os.environ["FARM_COORDINATOR_STAGING_DIR"] = str(staging)
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
