"""``farm attestations`` (what the ledger holds for a package) and ``farm revoke``.

Both talk to a coordinator's REST API (``farm.coordinator.client``); ``revoke`` needs an
operator token. ``farm.cli.coordinator_cmd`` adds them to the ``farm`` command.
"""

from __future__ import annotations

import json
import re
import time
from typing import Annotated, Any

import typer

__all__ = ["attestations", "parse_spec", "revoke"]

_NAME = r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?"
_VERSION = r"[A-Za-z0-9]([A-Za-z0-9.+!_-]*[A-Za-z0-9])?"
_SPEC = re.compile(rf"^(?P<name>{_NAME})(==(?P<version>{_VERSION}))?$")
_SHA256 = re.compile(r"^(sha256:)?[0-9a-f]{64}$")

CoordinatorOpt = Annotated[
    str | None,
    typer.Option("--coordinator", envvar="FARM_COORDINATOR_URL", help="Coordinator API URL."),
]


def parse_spec(spec: str) -> tuple[str, str | None]:
    """``NAME`` or ``NAME==VERSION`` → (name, version or None).

    Raises:
        typer.BadParameter: anything else, saying what is wrong.
    """
    match = _SPEC.match(spec.strip())
    if match is None:
        if "==" not in spec and "=" in spec:
            hint = "use == between name and version"
        elif spec.count("==") > 1:
            hint = "more than one =="
        elif spec.strip().endswith("=="):
            hint = "no version after =="
        else:
            hint = "names and versions are letters, digits and . _ - (versions also + !)"
        raise typer.BadParameter(
            f"{spec!r} is not NAME or NAME==VERSION: {hint}", param_hint="'NAME[==VERSION]'"
        )
    return match["name"], match["version"]


def _digest(value: str | None, hint: str) -> str | None:
    if value is not None and not _SHA256.match(value):
        raise typer.BadParameter(
            f"{value!r} is not a sha256 (64 lowercase hex digits)", param_hint=hint
        )
    return value


def _client(coordinator: str | None, operator_token: str | None = None) -> Any:
    from farm.coordinator.client import CoordinatorClient
    from farm.errors import ConfigError

    if not coordinator:
        raise ConfigError("give --coordinator URL (or $FARM_COORDINATOR_URL)")
    return CoordinatorClient(coordinator, operator_token=operator_token)


def _table(items: list[dict[str, Any]], title: str) -> Any:
    from rich.table import Table

    table = Table(
        "name", "version", "arch", "artifacts", "ledger index", "builders", "revoked", title=title
    )
    for a in items:
        artifacts = "\n".join(f"{x['name']}  sha256:{x['sha256'][:16]}…" for x in a["artifacts"])
        revoked = [
            f"{x['name']}: {x['revoked']['reason']} (index {x['revoked']['ledger_index']})"
            for x in a["artifacts"]
            if x.get("revoked")
        ]
        index = a.get("ledger_index")
        table.add_row(
            a["name"],
            a["version"],
            a["arch"],
            artifacts,
            "-" if index is None else str(index),
            "\n".join(b[:12] for b in a.get("builders") or []) or "-",
            "\n".join(revoked) or "no",
        )
    return table


def attestations(
    spec: Annotated[
        str,
        typer.Argument(metavar="NAME[==VERSION]", help="Package name, optionally ==version."),
    ],
    coordinator: CoordinatorOpt = None,
    arch: Annotated[str | None, typer.Option("--arch", help="Only this architecture.")] = None,
    sha256: Annotated[
        str | None, typer.Option("--sha256", help="Only attestations naming this artifact.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the attestations as JSON (with bundles).")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, max=500, help="How many (newest first).")] = 50,
) -> None:
    """List the committed attestations of a package: artifacts, ledger index, builders."""
    from rich.console import Console

    name, version = parse_spec(spec)
    page = _client(coordinator).attestations(
        name=name, version=version, arch=arch, sha256=_digest(sha256, "'--sha256'"), limit=limit
    )
    if as_json:
        typer.echo(json.dumps(page, indent=2, sort_keys=True))
        return
    console = Console()
    what = name + (f"=={version}" if version else "")
    if not page["items"]:
        console.print(f"no committed attestation of {what}", highlight=False)
        return
    console.print(_table(page["items"], f"attestations of {what}"))
    console.print(f"{len(page['items'])} of {page['total']} attestations", highlight=False)


def revoke(
    sha256: Annotated[str, typer.Argument(help="The artifact's sha256 (hex, sha256: allowed).")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded on the ledger).")],
    coordinator: CoordinatorOpt = None,
    operator_token: Annotated[
        str | None,
        typer.Option("--operator-token", envvar="FARM_OPERATOR_TOKEN", help="Operator token."),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait until the ledger commits or refuses it.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds --wait waits at most.")] = 120.0,
) -> None:
    """Revoke an attested artifact: the coordinator submits a revoke transaction."""
    from rich.console import Console

    from farm.errors import ConfigError, LedgerError, TransactionError

    _digest(sha256, "'SHA256'")
    if not reason.strip():
        raise typer.BadParameter("must not be empty", param_hint="'--reason'")
    if not operator_token:
        raise ConfigError("farm revoke needs --operator-token (or $FARM_OPERATOR_TOKEN)")
    console = Console()
    client = _client(coordinator, operator_token)
    row = client.revoke(sha256, reason)
    console.print(f"revocation {row['id']} of sha256:{row['sha256']} {row['status']}")
    if not wait:
        return
    deadline = time.monotonic() + timeout
    with console.status("waiting for the ledger…"):
        while row["status"] == "pending" and time.monotonic() < deadline:
            time.sleep(0.3)
            row = client.revocation(row["id"])
    if row["status"] == "committed":
        console.print(f"committed at ledger index {row['ledger_index']}", highlight=False)
    elif row["status"] == "rejected":
        raise TransactionError(f"the ledger refused the revocation: {row['error']}")
    else:
        raise LedgerError(f"revocation {row['id']} still pending after {timeout:g}s")
