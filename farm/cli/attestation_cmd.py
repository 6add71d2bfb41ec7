"""``farm attestations`` (what the ledger holds for a package) and ``farm revoke``.

Both talk to a coordinator's REST API (``farm.coordinator.client``); ``revoke`` needs an
operator token and signs the revoke transaction here with the operator key.
``farm.cli.coordinator_cmd`` adds them to the ``farm`` command.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from farm.cli import _tables
from farm.cli._operator import GenesisOpt, KeyOpt, load_operator

if TYPE_CHECKING:
    from rich.table import Table

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


def _table(items: list[dict[str, Any]], title: str, *, wide: bool = False) -> Table:
    """The attestations, one row each. The package's name is in the title (every row is
    of the package asked for); a revoked artifact says so, and :func:`_revocations`
    says why."""
    columns = ["version", "arch", "artifacts", "index", "builders"]
    if wide:
        columns = ["name", *columns, "build", "tx", "submitted"]
    table = _tables.table(*columns, wide=wide, title=title)
    for a in items:
        digits = None if wide else 16  # sha256 hex digits shown; enough to tell them apart
        artifacts = "\n".join(
            f"{x['name']}\nsha256:{x['sha256'][:digits]}" + (" revoked" if x.get("revoked") else "")
            for x in a["artifacts"]
        )
        index = a.get("ledger_index")
        builders = a.get("builders") or []
        row = [
            a["version"],
            a["arch"],
            artifacts,
            "-" if index is None else str(index),
            "\n".join(b if wide else _tables.short(b) for b in builders) or "-",
        ]
        if wide:
            submitted = _tables.when(a.get("submitted_at"))
            row = [a["name"], *row, a["build_id"], a["tx_id"], submitted]
        table.add_row(*row)
    return table


def _revocations(items: list[dict[str, Any]]) -> list[str]:
    """One line per revoked artifact: its name, why, and where the ledger holds it."""
    seen: dict[str, str] = {}
    for a in items:
        for x in a["artifacts"]:
            if x.get("revoked") and x["sha256"] not in seen:
                r = x["revoked"]
                seen[x["sha256"]] = (
                    f"revoked: {x['name']} (sha256:{x['sha256'][:16]}): {r['reason']} "
                    f"(ledger index {r['ledger_index']})"
                )
    return list(seen.values())


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
        bool,
        typer.Option("--json", help="Print the API's answer as JSON (attestations with bundles)."),
    ] = False,
    limit: Annotated[int, typer.Option(min=1, max=500, help="How many (newest first).")] = 50,
    wide: _tables.WideOpt = False,
) -> None:
    """List the committed attestations of a package: artifacts, ledger index, builders.

    --wide adds the build, the ledger transaction and when it was submitted, with full
    digests and builder ids.
    """
    from rich.console import Console

    name, version = parse_spec(spec)
    page = _client(coordinator).attestations(
        name=name, version=version, arch=arch, sha256=_digest(sha256, "'--sha256'"), limit=limit
    )
    if as_json:
        _tables.echo_json(page)
        return
    what = name + (f"=={version}" if version else "")
    if not page["items"]:
        Console().print(f"no committed attestation of {what}", highlight=False)
        return
    console = _tables.show(_table(page["items"], f"attestations of {what}", wide=wide), wide=wide)
    for line in _revocations(page["items"]):
        console.print(line, highlight=False)
    console.print(f"{len(page['items'])} of {page['total']} attestations", highlight=False)


def revoke(
    sha256: Annotated[str, typer.Argument(help="The artifact's sha256 (hex, sha256: allowed).")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded on the ledger).")],
    key: KeyOpt = None,
    genesis: GenesisOpt = None,
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
    """Revoke an attested artifact: the revoke transaction is signed here with the
    operator key (--key), and the coordinator relays it to the ledger."""
    from rich.console import Console

    from farm.errors import ConfigError, LedgerError, TransactionError

    _digest(sha256, "'SHA256'")
    if not reason.strip():
        raise typer.BadParameter("must not be empty", param_hint="'--reason'")
    if not operator_token:
        raise ConfigError("farm revoke needs --operator-token (or $FARM_OPERATOR_TOKEN)")
    tx = load_operator(key, genesis, "farm revoke").revoke(sha256, reason)
    console = Console()
    client = _client(coordinator, operator_token)
    row = client.revoke(tx)
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
