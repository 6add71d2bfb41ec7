"""What the distribution node serves about a release: the contract with ``farm pull``.

Everything a consumer needs to check an artifact without trusting the node is here:
the attestation bundle (coordinator-signed statement plus the builders' envelopes),
the ledger entry that holds it with an inclusion proof, the enroll entries of the
builder keys it rests on (also with inclusion proofs), and the co-signed checkpoint
all those proofs refer to. The node may lie in any field; the consumer believes only
what it can check against its pinned genesis (validator, operator and coordinator keys).

How the node serves them (api/distribution/app.py):

- ``GET /v1/packages/{name}/{version}`` (name compared PEP 503-normalized, version
  exactly) answers :class:`PackageRelease` with every artifact of the release that is
  attested inside the checkpoint and either mirrored or revoked; a revoked one has
  ``artifact.revoked`` set, with the revoke entry's proof. 404 when there is none.
- ``GET /v1/evidence/sha256/{digest}`` answers :class:`ArtifactEvidence` (also for a
  revoked artifact, ``artifact.revoked`` set); 410 with the reason when the revoke is
  committed but no checkpoint covers it yet; 404 when the node does not serve it.
- An artifact that is not revoked at the checkpoint's size carries ``not_revoked``
  (:class:`NotRevokedProof`): a proof that its digest is not in the revoked set the
  checkpoint commits to (:mod:`ledger.revoked_set`), so a node cannot hide a
  revocation; a consumer refuses an unrevoked artifact without one.
- All proofs of one answer are at the same ``tree_size``, the size of ``checkpoint``;
  ``LedgerEntryProof.entry`` is base64 of the exact committed transaction bytes (RFC
  8785 JSON), whose RFC 6962 leaf hash the proof starts from.
- ``/artifacts/sha256/{digest}`` and ``/artifacts/sha256/{digest}/{filename}`` give the
  bytes (``ArtifactInfo.url`` names the first).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ArtifactEvidence",
    "ArtifactInfo",
    "LedgerEntryProof",
    "NotRevokedProof",
    "PackageRelease",
    "Revocation",
    "RevokedNeighbor",
]

_HEX64 = r"^[0-9a-f]{64}$"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LedgerEntryProof(_Model):
    """One committed log entry and its RFC 6962 inclusion proof at ``tree_size``."""

    index: int = Field(ge=0, description="Leaf index of the entry in the ledger's log.")
    tree_size: int = Field(ge=1, description="Tree size the proof is for (the checkpoint's).")
    entry: str = Field(description="The transaction bytes (the leaf data), base64.")
    inclusion_proof: list[str] = Field(description="Audit path, hex hashes, leaf to root.")
    height: int | None = Field(default=None, description="Block height that committed it.")


class Revocation(_Model):
    """A committed revoke transaction naming an artifact."""

    sha256: str = Field(pattern=_HEX64)
    reason: str
    proof: LedgerEntryProof


class RevokedNeighbor(_Model):
    """A member of the checkpoint's revoked set next to the digest, with its proof."""

    index: int = Field(ge=0, description="Position of the member in the sorted set.")
    sha256: str = Field(pattern=_HEX64, description="The revoked artifact's digest.")
    path: list[str] = Field(
        description="RFC 6962 audit path of the member at ``index`` in the revoked set's "
        "Merkle tree, hex hashes, leaf to root."
    )


class NotRevokedProof(_Model):
    """Proof that an artifact is not in the revoked set its checkpoint commits to.

    The checkpoint's ``farm-revoked/v1 <count> <base64 root>`` extension line commits to
    the revoked artifact digests at its tree size, sorted ascending as bytes, as an RFC
    6962 Merkle tree (leaf = the 32-byte digest). ``left`` is the largest member below
    the artifact's digest and ``right`` the smallest above it, at adjacent indexes; only
    ``right`` (index 0) when the digest is below every member, only ``left`` (index
    count-1) when above, neither when the set is empty. The JSON of
    :meth:`ledger.revoked_set.AbsenceProof.to_json`; checked by
    :func:`ledger.revoked_set.verify_absent`.
    """

    count: int = Field(ge=0, description="Members of the revoked set (the checkpoint's count).")
    left: RevokedNeighbor | None = Field(description="The member just below, if any.")
    right: RevokedNeighbor | None = Field(description="The member just above, if any.")


class ArtifactInfo(_Model):
    """One attested artifact of a release."""

    filename: str = Field(description="Base name of the output, as installed (e.g. a wheel).")
    output: str = Field(description="The output name as the recipe and the statement name it.")
    sha256: str = Field(pattern=_HEX64)
    size: int = Field(ge=0)
    arch: str
    url: str = Field(description="Path of the bytes on this node: /artifacts/sha256/{digest}.")
    attestation_index: int = Field(ge=0, description="Ledger index of the attest entry.")
    revoked: Revocation | None = None


class ArtifactEvidence(_Model):
    """Everything needed to check one artifact's digest against the ledger.

    ``attestation.entry`` is the attest transaction (its ``bundle`` is the
    coordinator-signed SLSA statement plus the builders' envelopes);
    ``enrollments`` maps each builder key id the bundle rests on to the enroll
    entry that put it on the ledger (builders enrolled in genesis have none);
    every proof is at ``checkpoint``'s tree size. An artifact not revoked at that size
    carries ``not_revoked``, the proof that the checkpoint's revoked set does not hold
    it; a revoked one carries ``artifact.revoked`` instead.
    """

    artifact: ArtifactInfo
    bundle: dict[str, Any]
    attestation: LedgerEntryProof
    enrollments: dict[str, LedgerEntryProof]
    checkpoint: str = Field(description="Signed note (C2SP tlog-checkpoint), co-signed.")
    genesis_hash: str = Field(pattern=_HEX64)
    not_revoked: NotRevokedProof | None = Field(
        default=None,
        description="For an artifact not revoked at the checkpoint's size: proof that its "
        "digest is not in the revoked set the checkpoint commits to (its farm-revoked/v1 "
        "line). Null for a revoked artifact; a consumer refuses an unrevoked one without it.",
    )


class PackageRelease(_Model):
    """``GET /v1/packages/{name}/{version}``: the release's artifacts with their evidence."""

    name: str
    version: str
    checkpoint: str
    tree_size: int = Field(ge=1)
    artifacts: list[ArtifactEvidence]
