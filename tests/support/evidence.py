"""A real little ledger for consumer tests: real keys, DSSE envelopes, Merkle log and
co-signed checkpoints, and the evidence a distribution node would serve from it.

Transactions are made the way the coordinator makes them (make_enroll, make_attest,
make_revoke); the log is :class:`farm.merkle.MerkleLog` over their leaf hashes, and
checkpoints are cosignature/v1 notes of the validators' own keys, each committing to
the revoked set at its size (the artifacts named by the revoke entries appended so
far, :mod:`ledger.revoked_set`) as the validators' checkpoints do. Evidence of an
artifact outside that set carries its absence proof (``not_revoked``).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from farm.attestation import AttestationBundle, verify_bundle
from farm.checkpoint import Checkpoint, cosign_checkpoint, merge_signatures
from farm.evidence import (
    ArtifactEvidence,
    ArtifactInfo,
    LedgerEntryProof,
    NotRevokedProof,
    Revocation,
)
from farm.merkle import MerkleLog, hash_leaf
from farm.result import OutputDigest
from farm.transactions import RevokeTx, decode_tx, make_attest, make_enroll, make_revoke
from ledger.genesis import Genesis
from ledger.revoked_set import RevokedSet, revoked_at
from tests.support.attest_world import ARCH, WHEEL, World, result
from tests.support.ledger_fixtures import CHAIN, validator_info

NOW = 1_800_000_000
BLOB = b"PK\x03\x04 a wheel, really " * 64
SHA = hashlib.sha256(BLOB).hexdigest()


@dataclass
class MiniLedger:
    """Four validators, five builders (enrolled on the log), a coordinator, an operator."""

    world: World = field(default_factory=World)
    validator_keys: list[Ed25519PrivateKey] = field(
        default_factory=lambda: [Ed25519PrivateKey.generate() for _ in range(4)]
    )
    entries: list[bytes] = field(default_factory=list)
    log: MerkleLog = field(default_factory=MerkleLog)
    enrolled: dict[str, int] = field(default_factory=dict)
    revocations: dict[str, int] = field(default_factory=dict)
    """Revoked sha256 → index of the first revoke entry naming it."""

    def __post_init__(self) -> None:
        self.genesis = Genesis(
            chain_id=CHAIN,
            genesis_time="2026-01-01T00:00:00Z",
            validators=tuple(validator_info(i, k) for i, k in enumerate(self.validator_keys)),
            operators=(self.world.operator.public_dict(),),
            coordinators=(self.world.coordinator.public_dict(),),
            quorum=3,
        )
        for i, k in enumerate(self.world.builders):
            tx = make_enroll(
                self.world.operator,
                k.public_dict(),
                (ARCH,),
                f"host{i}",
                domain=f"host{i}",
                chain=self.genesis.chain_id,
            )
            self.enrolled[k.keyid] = self.append(tx)

    def append(self, tx: bytes) -> int:
        decoded = decode_tx(tx)
        self.entries.append(tx)
        index = self.log.append(hash_leaf(tx))
        if isinstance(decoded, RevokeTx):
            self.revocations.setdefault(decoded.artifact, index)
        return index

    def revoked_set(self, size: int | None = None) -> RevokedSet:
        """The revoked set at tree ``size`` (default: now)."""
        return revoked_at(self.revocations, self.log.size if size is None else size)

    def not_revoked(self, sha: str = SHA, size: int | None = None) -> NotRevokedProof:
        """The absence proof of ``sha`` at ``size``. Raises ProofError if it is revoked."""
        proof = self.revoked_set(size).absence_proof(sha)
        return NotRevokedProof.model_validate(proof.to_json())

    def attest(self, sha: str = SHA, build_id: str = "build-0001") -> tuple[int, AttestationBundle]:
        out = OutputDigest(name=WHEEL, sha256=sha, size=len(BLOB))
        envelopes = [result(k, build_id=build_id, outputs=(out,)) for k in self.world.builders[:3]]
        bundle = self.world.bundle(envelopes, build_id=build_id)
        return self.append(make_attest(bundle)), bundle

    def revoke(self, sha: str = SHA, reason: str = "CVE-2026-0001") -> int:
        return self.append(
            make_revoke(self.world.operator, sha, reason, chain=self.genesis.chain_id)
        )

    def note(
        self,
        size: int | None = None,
        *,
        at: int = NOW,
        signers: int = 4,
        root: bytes | None = None,
        extensions: tuple[str, ...] | None = None,
    ) -> str:
        """The co-signed checkpoint at ``size``; ``extensions`` replaces its lines (by
        default the revoked-set commitment at that size)."""
        size = self.log.size if size is None else size
        if extensions is None:
            extensions = (self.revoked_set(size).extension(),)
        cp = Checkpoint(self.genesis.chain_id, size, root or self.log.root(size), extensions)
        notes = [
            cosign_checkpoint(cp, f"v{i}", key, at)
            for i, key in enumerate(self.validator_keys[:signers])
        ]
        return merge_signatures(*notes)

    def proof(self, index: int, size: int | None = None) -> LedgerEntryProof:
        size = self.log.size if size is None else size
        return LedgerEntryProof(
            index=index,
            tree_size=size,
            entry=base64.b64encode(self.entries[index]).decode(),
            inclusion_proof=[h.hex() for h in self.log.inclusion_proof(index, size)],
        )

    def consistency(self, old: int, new: int | None = None) -> tuple[bytes, ...]:
        return self.log.consistency_proof(old, new)

    def evidence(
        self,
        index: int,
        bundle: AttestationBundle,
        *,
        sha: str = SHA,
        size: int = len(BLOB),
        revoked_at: int | None = None,
        tree_size: int | None = None,
        note: str | None = None,
        **changes: Any,
    ) -> ArtifactEvidence:
        """Evidence as an honest node serves it at ``tree_size``; ``changes`` replace
        fields. Without ``revoked_at`` it carries the absence proof if there is one
        (None for a revoked artifact: the node is hiding the revocation)."""
        tree_size = self.log.size if tree_size is None else tree_size
        revoked = None
        not_revoked = None
        if revoked_at is None and sha not in self.revoked_set(tree_size):
            not_revoked = self.not_revoked(sha, tree_size)
        if revoked_at is not None:
            tx = decode_tx(self.entries[revoked_at])
            revoked = Revocation(
                sha256=sha,
                reason=getattr(tx, "reason", ""),
                proof=self.proof(revoked_at, tree_size),
            )
        verified = verify_bundle(
            bundle, self.world.builder_keys(), self.world.coordinator_keys(), 3
        )
        values: dict[str, Any] = {
            "artifact": ArtifactInfo(
                filename=WHEEL,
                output=WHEEL,
                sha256=sha,
                size=size,
                arch=ARCH,
                url=f"/artifacts/sha256/{sha}",
                attestation_index=index,
                revoked=revoked,
            ),
            "bundle": bundle.model_dump(mode="json"),
            "attestation": self.proof(index, tree_size),
            "enrollments": {
                b: self.proof(self.enrolled[b], tree_size) for b in verified.builder_ids
            },
            "checkpoint": note or self.note(tree_size),
            "genesis_hash": self.genesis.hash,
            "not_revoked": not_revoked,
        }
        values.update(changes)
        return ArtifactEvidence(**values)
