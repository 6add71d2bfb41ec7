"""``farm dist``: run the read-only distribution node."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from farm.logs import LogFormat, LogFormatOption
from farm.tls import TlsCertOption, TlsKeyOption

__all__ = ["app", "serve"]

app = typer.Typer(help="The read-only distribution node.", no_args_is_help=True)


@app.command()
def serve(
    genesis: Annotated[
        Path, typer.Option("--genesis", help="The chain's genesis file (the only trust root).")
    ],
    coordinator: Annotated[
        str,
        typer.Option(
            "--coordinator", help="The coordinator's URL (its staging store has the bytes)."
        ),
    ],
    data: Annotated[
        Path, typer.Option("--data", help="Directory for the replicated ledger and the blobs.")
    ],
    ledger: Annotated[
        str | None,
        typer.Option(
            "--ledger",
            help="Validators' HTTP URLs, comma-separated (default: the genesis addresses).",
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8700,
    poll_interval: Annotated[
        float, typer.Option("--poll-interval", help="Seconds between polls of the validators.")
    ] = 1.0,
    log_level: Annotated[str, typer.Option("--log-level", help="Log level.")] = "info",
    log_format: LogFormatOption = LogFormat.text,
    tls_cert: TlsCertOption = None,
    tls_key: TlsKeyOption = None,
    max_age: Annotated[
        float | None,
        typer.Option(
            "--max-age",
            help="Oldest checkpoint, in seconds, with which /readyz says ready "
            "(default $FARM_DIST_MAX_AGE or 86400, the consumer's default).",
        ),
    ] = None,
) -> None:
    """Follow the ledger, mirror committed artifacts, serve them with their evidence.

    Serves GET/HEAD /artifacts/sha256/{digest}, /v1/packages/{name}/{version},
    /v1/evidence/sha256/{digest} and a pip index at /simple/. Nothing is served that a
    block certified by 2f+1 genesis validators and a co-signed checkpoint do not cover.
    Also GET /healthz, /readyz (followed, checkpoint fresh) and /metrics (Prometheus).
    """
    from pydantic import ValidationError

    from api.distribution.app import serve as run
    from api.distribution.settings import DistSettings
    from farm.errors import ConfigError
    from farm.logs import Service, setup_logging

    try:
        setup_logging(Service.distribution, log_format, log_level)
    except ValueError as exc:
        raise ConfigError(f"--log-level: {exc}") from None
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per poll otherwise
    extra: dict[str, Any] = {} if max_age is None else {"max_age": max_age}
    try:
        settings = DistSettings(
            genesis=genesis,
            ledger_urls=ledger or (),
            coordinator_url=coordinator,
            data_dir=data,
            host=host,
            port=port,
            poll_interval=poll_interval,
            tls_cert=tls_cert,
            tls_key=tls_key,
            **extra,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{where}: {first['msg']}") from None
    run(settings, log_level=log_level.lower())
