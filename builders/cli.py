"""``farm builder``: a builder host's identity and worker (plugged into ``farm``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from farm.logs import LogFormat, LogFormatOption

app = typer.Typer(
    help="Run a builder host: create its identity, start its worker, list builders.",
    no_args_is_help=True,
)
console = Console()

HomeOpt = Annotated[
    Path | None,
    typer.Option("--home", help="The builder's directory (default $FARM_HOME or ~/.farm/builder)."),
]


def _settings(  # type: ignore[no-untyped-def]
    home: Path | None, redis_url: str | None = None, **more: str | None
):
    from pydantic import ValidationError

    from builders.settings import BuilderSettings
    from farm.errors import ConfigError

    overrides: dict[str, object] = {k: v for k, v in more.items() if v is not None}
    if home is not None:
        overrides["home"] = home
    if redis_url is not None:
        overrides["redis_url"] = redis_url
    try:
        return BuilderSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{where}: {first['msg']}") from None


@app.command()
def init(
    home: HomeOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing key.")] = False,
) -> None:
    """Create this builder's signing key (mode 0600) and print its builder id."""
    from builders.identity import init_identity

    settings = _settings(home)
    key = init_identity(settings.key_path, force=force)
    console.print(f"builder id: [bold]{key.keyid}[/]", highlight=False)
    console.print(f"key: {settings.key_path} (mode 0600)", highlight=False)


@app.command()
def run(
    home: HomeOpt = None,
    redis_url: Annotated[
        str | None, typer.Option("--redis-url", help="Broker URL (default $FARM_REDIS_URL).")
    ] = None,
    loglevel: Annotated[str, typer.Option(help="Log level.")] = "INFO",
    log_format: LogFormatOption = LogFormat.text,
    metrics_address: Annotated[
        str | None,
        typer.Option(
            "--metrics-address",
            help="HOST:PORT to serve /healthz, /readyz and /metrics on "
            "(default $FARM_METRICS_ADDRESS; empty: not served).",
        ),
    ] = None,
    image: Annotated[
        str | None,
        typer.Option(
            "--image",
            help="The pinned builder image ID (sha256:...) /readyz requires "
            "(default $FARM_BUILDER_IMAGE).",
        ),
    ] = None,
    coordinator_key: Annotated[
        Path | None,
        typer.Option(
            "--coordinator-key",
            help="The coordinator's public key file: only tasks it signed are run "
            "(default $FARM_BUILDER_COORDINATOR_KEY; required).",
        ),
    ] = None,
) -> None:
    """Start this builder's Celery worker on its own queue (runs until stopped)."""
    from builders.worker import run_worker
    from farm.errors import ConfigError
    from farm.logs import Service, setup_logging

    try:
        setup_logging(Service.builder, log_format, loglevel)
    except ValueError as exc:
        raise ConfigError(f"--loglevel: {exc}") from None
    settings = _settings(
        home,
        redis_url,
        metrics_address=metrics_address,
        builder_image=image,
        builder_coordinator_key=str(coordinator_key) if coordinator_key is not None else None,
    )
    run_worker(settings, loglevel=loglevel, quiet=log_format is LogFormat.json)


@app.command("id")
def show_id(home: HomeOpt = None) -> None:
    """Print this builder's id."""
    from builders.identity import load_identity

    typer.echo(load_identity(_settings(home).key_path).keyid)


@app.command()
def enroll(
    coordinator: Annotated[
        str, typer.Option("--coordinator", envvar="FARM_COORDINATOR_URL", help="Coordinator URL.")
    ],
    token: Annotated[str, typer.Option("--token", help="One-time enrollment token.")],
    home: HomeOpt = None,
    hostname: Annotated[
        str | None, typer.Option(help="Host name to register (default: this host's).")
    ] = None,
) -> None:
    """Register this builder's public key and architectures with a coordinator."""
    import socket

    from builders.arch import buildable_arches
    from builders.identity import load_identity
    from farm.coordinator.client import CoordinatorClient

    key = load_identity(_settings(home).key_path)
    client = CoordinatorClient(coordinator, key=key)
    builder = client.enroll(token, hostname or socket.gethostname(), list(buildable_arches()))
    state = "approved" if builder["approved"] else "pending approval"
    console.print(f"enrolled builder [bold]{builder['id']}[/] ({state})", highlight=False)
    console.print(f"arches: {', '.join(builder['arches'])}", highlight=False)


@app.command("list")
def list_cmd(
    redis_url: Annotated[
        str, typer.Option("--redis-url", envvar="FARM_REDIS_URL", help="Redis URL.")
    ] = "redis://127.0.0.1:6379/0",
) -> None:
    """List running builders (from their heartbeats)."""
    import redis

    from farm.registry import list_builders

    client = redis.Redis.from_url(redis_url)
    table = Table("builder", "arches", "host", "pid", "seen")
    for b in list_builders(client):
        table.add_row(
            b.builder_id[:16],
            ",".join(b.arches),
            b.hostname,
            str(b.pid),
            b.seen_at.strftime("%H:%M:%S"),
        )
    console.print(table)
