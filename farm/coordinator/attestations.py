"""Reads of the attestations the coordinator committed to the ledger."""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import Session, col, select

from farm.coordinator.errors import NotFoundError
from farm.coordinator.models import (
    ArtifactPublic,
    Attestation,
    AttestationArtifact,
    AttestationPage,
    AttestationPublic,
)

__all__ = ["attestation_public", "get_attestation", "list_attestations"]


def attestation_public(session: Session, row: Attestation) -> AttestationPublic:
    """The public view of one attestation, with its attested artifacts."""
    artifacts = session.exec(
        select(AttestationArtifact)
        .where(AttestationArtifact.tx_id == row.tx_id)
        .order_by(col(AttestationArtifact.name))
    ).all()
    return AttestationPublic(
        **row.model_dump(),
        artifacts=[ArtifactPublic(name=a.name, sha256=a.sha256) for a in artifacts],
    )


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
    limit: int = 50,
    offset: int = 0,
) -> AttestationPage:
    """One page of attestations of ``status``, newest first, filtered as given.

    ``sha256`` matches any attested artifact (hex, ``sha256:`` prefix allowed).
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
    total = int(session.exec(count).one())
    rows = session.exec(
        query.order_by(col(Attestation.submitted_at).desc(), col(Attestation.tx_id))
        .offset(offset)
        .limit(limit)
    ).all()
    items = [attestation_public(session, r) for r in rows]
    nxt = offset + len(items)
    return AttestationPage(items=items, total=total, next_offset=nxt if nxt < total else None)
