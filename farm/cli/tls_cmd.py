"""``farm tls``: the farm's certificate authority for HTTPS between hosts.

The work is :mod:`farm.tls`; this module is its command line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(
    help="The farm's certificate authority: HTTPS between hosts (coordinator, "
    "distribution node, validators' HTTP API).",
    no_args_is_help=True,
)
console = Console(stderr=True, highlight=False)

CaDir = Annotated[
    Path, typer.Argument(help="The CA directory (ca.pem is public; ca.key stays here).")
]


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write a new file with ``mode`` from the start; an existing file is refused."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _refuse_existing(*paths: Path) -> None:
    from farm.errors import ConfigError

    for path in paths:
        if path.exists():
            raise ConfigError(f"{path} exists; it is kept (remove it to make a new one)")


@app.command("init")
def init(
    directory: CaDir,
    name: Annotated[str, typer.Option(help="The CA's common name.")] = "farm CA",
) -> None:
    """Make a new CA in DIRECTORY: ca.pem (give it to every host and client) and
    ca.key (mode 0600; keep it with the operator, off the farm's hosts)."""
    from farm.tls import CA_CERT, CA_KEY, make_ca

    directory.mkdir(parents=True, exist_ok=True)
    _refuse_existing(directory / CA_KEY, directory / CA_CERT)
    ca = make_ca(name)
    _write(directory / CA_KEY, ca.key_pem, 0o600)
    _write(directory / CA_CERT, ca.cert_pem, 0o644)
    console.print(f"[green]✓[/] CA {name!r}: {directory / CA_CERT} (public), {directory / CA_KEY}")


@app.command("issue")
def issue(
    directory: CaDir,
    names: Annotated[
        list[str], typer.Argument(help="Host names and IP addresses the service is reached by.")
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Write OUT.pem and OUT.key (default: first name).")
    ] = Path(),
    days: Annotated[int, typer.Option(min=1, max=825, help="Days the certificate is valid.")] = 397,
) -> None:
    """Issue a server certificate for NAMES, signed by the CA in DIRECTORY: give the
    service --tls-cert OUT.pem --tls-key OUT.key (the key is mode 0600)."""
    from farm.tls import issue_cert, load_ca

    stem = out if out != Path() else Path(names[0])
    cert_path, key_path = stem.with_name(stem.name + ".pem"), stem.with_name(stem.name + ".key")
    _refuse_existing(cert_path, key_path)
    issued = issue_cert(load_ca(directory), names, days=days)
    _write(key_path, issued.key_pem, 0o600)
    _write(cert_path, issued.cert_pem, 0o644)
    console.print(f"[green]✓[/] {cert_path} and {key_path} for {', '.join(names)}")
