"""Revocations: an operator withdraws an attested artifact through a revoke transaction.

:func:`request_revocation` stores a revoke transaction the operator signed where they
work (``farm revoke --key``; checked by :mod:`farm.coordinator.operator_txs` before it
gets here: the coordinator holds no operator key) ``pending``; the ledger publisher submits it
(:meth:`~farm.coordinator.ledger_client.LedgerPublisher.tick`) and stores the receipt
(``committed``) or the ledger's refusal (``rejected``, with its reason).

The ledger revokes only artifacts it has attested and each artifact once
(``ledger.state``); the coordinator refuses the same up front, with a message naming
the problem: a digest it never committed an attestation for, or one already revoked
or being revoked. A rejected revocation may be asked again.

Attestations show a revocation once it is committed (:func:`revoked_artifacts`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from farm.coordinator.errors import ConflictError, NotFoundError
from farm.coordinator.models import (
    Attestation,
    AttestationArtifact,
    Revocation,
    RevocationPage,
    RevocationPublic,
    RevokedPublic,
)
from farm.transactions import RevokeTx, tx_id

__all__ = [
    "get_revocation",
    "list_revocations",
    "pending_revocations",
    "request_revocation",
    "revoked_artifacts",
]


def _short(sha: str) -> str:
    return f"sha256:{sha[:16]}…"


def request_revocation(
    session: Session,
    tx: RevokeTx,
    data: bytes,
    requested_by: str,
    now: datetime,
) -> Revocation:
    """Store the operator-signed revoke transaction ``tx`` (wire bytes ``data``) as a
    pending revocation.

    Raises:
        NotFoundError: no committed attestation here names that artifact.
        ConflictError: the artifact is already revoked, or a revocation is pending, or
            these very bytes were relayed before.
    """
    sha = tx.artifact
    attested = session.exec(
        select(AttestationArtifact.tx_id)
        .join(Attestation, col(Attestation.tx_id) == col(AttestationArtifact.tx_id))
        .where(AttestationArtifact.sha256 == sha, Attestation.status == "committed")
        .limit(1)
    ).first()
    if attested is None:
        raise NotFoundError(
            f"artifact {_short(sha)} has no committed attestation on this coordinator; "
            "the ledger revokes only attested artifacts"
        )
    earlier = session.exec(
        select(Revocation).where(
            Revocation.sha256 == sha, col(Revocation.status).in_(("pending", "committed"))
        )
    ).first()
    if earlier is not None:
        where = (
            f"at ledger index {earlier.ledger_index}"
            if earlier.status == "committed"
            else "pending on the ledger"
        )
        raise ConflictError(
            f"artifact {_short(sha)} is already revoked ({where}; revocation {earlier.id})"
        )
    if session.exec(select(Revocation).where(Revocation.tx_id == tx_id(data))).first():
        raise ConflictError(f"this revoke transaction of {_short(sha)} was relayed before")
    row = Revocation(
        sha256=sha,
        reason=tx.reason,
        tx=data.decode("utf-8"),
        tx_id=tx_id(data),
        requested_by=requested_by[:255],
        created_at=now,
    )
    session.add(row)
    session.commit()
    return row


def pending_revocations(session: Session) -> list[Revocation]:
    """Revocations not yet answered by the ledger, oldest first."""
    return list(
        session.exec(
            select(Revocation).where(Revocation.status == "pending").order_by(col(Revocation.id))
        )
    )


def get_revocation(session: Session, revocation_id: int) -> RevocationPublic:
    """One revocation by id."""
    row = session.get(Revocation, revocation_id)
    if row is None:
        raise NotFoundError(f"revocation {revocation_id} does not exist")
    return RevocationPublic.model_validate(row.model_dump())


def list_revocations(
    session: Session,
    *,
    sha256: str | None = None,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> RevocationPage:
    """One page of revocations, newest first, optionally of one artifact or status."""
    query = select(Revocation)
    count = select(func.count()).select_from(Revocation)
    if sha256 is not None:
        query = query.where(Revocation.sha256 == sha256.removeprefix("sha256:"))
        count = count.where(Revocation.sha256 == sha256.removeprefix("sha256:"))
    if status is not None:
        query = query.where(Revocation.status == status)
        count = count.where(Revocation.status == status)
    total = int(session.exec(count).one())
    rows = session.exec(query.order_by(col(Revocation.id).desc()).offset(offset).limit(limit))
    items = [RevocationPublic.model_validate(r.model_dump()) for r in rows]
    nxt = offset + len(items)
    return RevocationPage(items=items, total=total, next_offset=nxt if nxt < total else None)


def revoked_artifacts(session: Session, digests: Iterable[str]) -> dict[str, RevokedPublic]:
    """The committed revocation of each of ``digests`` (hex) that has one."""
    wanted = sorted(set(digests))
    if not wanted:
        return {}
    rows = session.exec(
        select(Revocation).where(
            col(Revocation.sha256).in_(wanted), Revocation.status == "committed"
        )
    )
    found: dict[str, RevokedPublic] = {}
    for row in rows:
        assert row.id is not None
        found[row.sha256] = RevokedPublic(
            revocation_id=row.id, reason=row.reason, ledger_index=row.ledger_index
        )
    return found
