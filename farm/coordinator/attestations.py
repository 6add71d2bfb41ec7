"""Reads of the attestations the coordinator committed to the ledger.

An artifact whose revocation is committed shows it (``revoked``: reason, ledger index),
and so does every attestation that names it; ``revoked`` filters on that.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from farm.coordinator.errors import NotFoundError
from farm.coordinator.models import (
    ArtifactPublic,
    Attestation,
    AttestationArtifact,
    AttestationPage,
    AttestationPublic,
    Revocation,
)
from farm.coordinator.revocations import revoked_artifacts

__all__ = ["attestation_public", "attestation_publics", "get_attestation", "list_attestations"]


def attestation_public(session: Session, row: Attestation) -> AttestationPublic:
    """The public view of one attestation, with its attested artifacts."""
    return attestation_publics(session, [row])[0]


def attestation_publics(session: Session, rows: Sequence[Attestation]) -> list[AttestationPublic]:
    """Public views of ``rows``; their artifacts and revocations are read in one query each
    (a page of attestations costs three queries, not two per attestation)."""
    by_tx: dict[str, list[AttestationArtifact]] = {r.tx_id: [] for r in rows}
    if by_tx:
        for a in session.exec(
            select(AttestationArtifact)
            .where(col(AttestationArtifact.tx_id).in_(list(by_tx)))
            .order_by(col(AttestationArtifact.name))
        ):
            by_tx[a.tx_id].append(a)
    revoked = revoked_artifacts(session, (a.sha256 for arts in by_tx.values() for a in arts))
    return [
        AttestationPublic(
            # The row's values as they are: model_dump() would copy every bundle first.
            **{name: getattr(row, name) for name in Attestation.model_fields},
            artifacts=[
                ArtifactPublic(name=a.name, sha256=a.sha256, revoked=revoked.get(a.sha256))
                for a in by_tx[row.tx_id]
            ],
            revoked=any(a.sha256 in revoked for a in by_tx[row.tx_id]),
            builders=_builders(row.bundle),
        )
        for row in rows
    ]


def _builders(bundle: dict[str, Any]) -> list[str]:
    """Key ids that signed the bundle's builder envelopes (checked by the ledger)."""
    ids = {
        str(sig.get("keyid"))
        for env in bundle.get("builder_envelopes", ())
        if isinstance(env, dict)
        for sig in env.get("signatures", ())
        if isinstance(sig, dict) and sig.get("keyid")
    }
    return sorted(ids)


def get_attestation(session: Session, tx_id: str) -> AttestationPublic:
    """The attestation whose ledger transaction id is ``tx_id``."""
    row = session.get(Attestation, tx_id)
    if row is None:
        raise NotFoundError(f"attestation {tx_id[:64]} does not exist")
    return attestation_public(session, row)


def list_attestations(
    session: Session,
    *,
    name: str | None = None,
    version: str | None = None,
    arch: str | None = None,
    sha256: str | None = None,
    recipe_digest: str | None = None,
    status: str = "committed",
    revoked: bool | None = None,
    limit: int = 50,
    offset: int = 0,
) -> AttestationPage:
    """One page of attestations of ``status``, newest first, filtered as given.

    ``sha256`` matches any attested artifact (hex, ``sha256:`` prefix allowed);
    ``revoked`` keeps those with (True) or without (False) a revoked artifact.
    """
    query = select(Attestation).where(Attestation.status == status)
    count = select(func.count()).select_from(Attestation).where(Attestation.status == status)
    for column, value in (
        (Attestation.name, name),
        (Attestation.version, version),
        (Attestation.arch, arch),
        (Attestation.recipe_digest, recipe_digest),
    ):
        if value is not None:
            query = query.where(column == value)
            count = count.where(column == value)
    if sha256 is not None:
        holders = select(AttestationArtifact.tx_id).where(
            AttestationArtifact.sha256 == sha256.removeprefix("sha256:")
        )
        query = query.where(col(Attestation.tx_id).in_(holders))
        count = count.where(col(Attestation.tx_id).in_(holders))
    if revoked is not None:
        gone = select(Revocation.sha256).where(Revocation.status == "committed")
        holders = select(AttestationArtifact.tx_id).where(col(AttestationArtifact.sha256).in_(gone))
        has = col(Attestation.tx_id).in_(holders)
        query = query.where(has if revoked else ~has)
        count = count.where(has if revoked else ~has)
    rows = session.exec(
        query.order_by(col(Attestation.submitted_at).desc(), col(Attestation.tx_id))
        .offset(offset)
        .limit(limit)
    ).all()
    if len(rows) < limit and (rows or offset == 0):
        total = offset + len(rows)  # the last page: what it holds is the count
    else:
        total = int(session.exec(count).one())
    items = attestation_publics(session, rows)
    nxt = offset + len(items)
    return AttestationPage(items=items, total=total, next_offset=nxt if nxt < total else None)
