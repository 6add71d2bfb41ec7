"""What a committed attest transaction puts on offer: one :class:`CatalogEntry` per output.

Pure: bytes in, values out. The transaction has already been validated by the ledger's
state machine (signatures, quorum, enrolled builders) before it gets here, so this only
reads it: the coordinator's statement gives the package, version, architecture and the
outputs' names and digests; the builders' own statements give each output's size (they
signed it, and a mirrored blob must not be longer).
"""

from __future__ import annotations

import base64
import binascii
import json
import posixpath
import re
from dataclasses import dataclass
from typing import Any

from farm.attestation import ProvenanceStatement
from farm.errors import TransactionError
from farm.transactions import AttestTx, decode_tx

__all__ = ["CatalogEntry", "builder_ids", "entries_of_attest", "normalize_name"]

_NORMALIZE = re.compile(r"[-_.]+")


def normalize_name(name: str) -> str:
    """PEP 503 normalized project name: runs of ``-_.`` become ``-``, lower case."""
    return _NORMALIZE.sub("-", name).lower()


@dataclass(frozen=True)
class CatalogEntry:
    """One attested output, as committed at log ``index``."""

    sha256: str
    output: str
    filename: str
    arch: str
    name: str
    version: str
    size: int
    index: int


def _payload(envelope: dict[str, Any]) -> Any:
    return json.loads(base64.b64decode(envelope["payload"], validate=True))


def _sizes(envelopes: tuple[dict[str, Any], ...]) -> dict[str, int]:
    """sha256 → largest size any builder statement declares for it."""
    sizes: dict[str, int] = {}
    for env in envelopes:
        try:
            outputs = _payload(env)["predicate"]["outputs"]
        except (KeyError, TypeError, ValueError, binascii.Error):
            continue
        for out in outputs if isinstance(outputs, list) else ():
            sha, size = out.get("sha256"), out.get("size")
            if isinstance(sha, str) and isinstance(size, int) and size >= 0:
                sizes[sha] = max(size, sizes.get(sha, 0))
    return sizes


def builder_ids(tx: AttestTx) -> tuple[str, ...]:
    """The builder key ids the bundle's envelopes claim, in order, without repeats."""
    seen: list[str] = []
    for env in tx.bundle.builder_envelopes:
        try:
            builder = _payload(env)["predicate"]["builder_id"]
        except (KeyError, TypeError, ValueError, binascii.Error):
            continue
        if isinstance(builder, str) and builder not in seen:
            seen.append(builder)
    return tuple(seen)


def entries_of_attest(data: bytes, index: int) -> tuple[CatalogEntry, ...]:
    """The outputs a committed attest transaction offers; () for any other kind.

    Raises:
        TransactionError: bytes that are not a well-formed transaction.
    """
    tx = decode_tx(data)
    if not isinstance(tx, AttestTx):
        return ()
    try:
        statement = ProvenanceStatement.model_validate(_payload(tx.bundle.envelope))
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise TransactionError(f"entry {index}: attestation payload unreadable: {exc}") from None
    ext = statement.external
    sizes = _sizes(tx.bundle.builder_envelopes)
    entries = []
    for subject in statement.subject:
        sha = subject.digest.get("sha256")
        if sha is None or sha not in sizes:
            raise TransactionError(f"entry {index}: output {subject.name} has no signed size")
        entries.append(
            CatalogEntry(
                sha256=sha,
                output=subject.name,
                filename=posixpath.basename(subject.name),
                arch=ext.arch,
                name=ext.recipe,
                version=ext.version,
                size=sizes[sha],
                index=index,
            )
        )
    return tuple(entries)
