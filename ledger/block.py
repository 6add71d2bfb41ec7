"""Blocks, validator sets, vote sign-bytes and commit certificates.

Encoding (documented once, used for hashing and signing everywhere in the ledger):
every value that is hashed or signed is an RFC 8785 canonical JSON object
(:func:`farm.canonical.canonical_json`) with a ``"type"`` field naming the kind and
version of the value (a domain separator, so a vote can never be replayed as a block
or a proposal), byte strings as lowercase hex, integers as JSON numbers (all well
below 2**53), and ``null`` for nil.

- A block's hash is ``sha256(canonical_json(block.header_json()))``: the header names
  the transactions by ``txs_root``, the RFC 6962 Merkle tree hash of their leaf hashes
  (:func:`txs_root`), and their count, so hashing a block costs one sha256 per
  transaction instead of canonicalising megabytes of hex. The time of day is not part
  of a block, so every honest validator computes the same hash.
- A vote's signed bytes are :func:`vote_sign_bytes`; a commit certificate is the
  2f+1 precommit signatures over exactly those bytes, so it can be checked by anyone
  who knows the validators' public keys.

Invariants: ``quorum_size(n) + quorum_size(n) - n > f`` (two quorums share an honest
validator), and a certificate only verifies with at least ``quorum_size(n)`` distinct,
known signers, each with a good signature over this height, round and block hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from farm import ed25519
from farm.canonical import canonical_json
from farm.merkle import hash_leaf
from farm.merkle import root as merkle_root
from ledger.errors import ConsensusError

__all__ = [
    "HASH_SIZE",
    "Block",
    "CommitCertificate",
    "CommitSig",
    "ValidatorSet",
    "VoteKind",
    "quorum_size",
    "skip_size",
    "txs_root",
    "verify_commit_certificate",
    "vote_sign_bytes",
]

#: Size in bytes of every hash in the ledger (sha256).
HASH_SIZE = 32

BLOCK_TYPE = "farm-ledger/block/v2"
VOTE_TYPE = "farm-ledger/vote/v1"


def quorum_size(n: int) -> int:
    """Votes needed for a quorum among ``n`` equal validators: floor(2n/3) + 1 (2f+1)."""
    return (2 * n) // 3 + 1


def skip_size(n: int) -> int:
    """Senders needed to prove an honest one is present: floor((n-1)/3) + 1 (f+1)."""
    return (n - 1) // 3 + 1


class VoteKind(StrEnum):
    """The two kinds of vote of the algorithm."""

    PREVOTE = "prevote"
    PRECOMMIT = "precommit"


def txs_root(txs: Sequence[bytes]) -> bytes:
    """RFC 6962 Merkle tree hash of the transactions' leaf hashes (the empty tree's
    hash for none): what a block header commits to instead of the bytes themselves."""
    return merkle_root([hash_leaf(tx) for tx in txs])


def _check_hash(name: str, value: bytes) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise ConsensusError(f"{name} must be {HASH_SIZE} bytes")


@dataclass(frozen=True)
class Block:
    """The contents a height agrees on; the same whatever round it is decided in.

    ``log_root`` and ``log_size`` are the Merkle log's root and size after appending
    ``txs``; ``proposer`` is the validator that built the block (which may differ from a
    later round's proposer that re-proposes it).
    """

    height: int
    prev_hash: bytes
    txs: tuple[bytes, ...]
    log_root: bytes
    log_size: int
    proposer: str

    def __post_init__(self) -> None:
        if self.height < 0 or self.log_size < 0:
            raise ConsensusError("block height and log size must not be negative")
        _check_hash("prev_hash", self.prev_hash)
        _check_hash("log_root", self.log_root)
        if not all(isinstance(tx, bytes) for tx in self.txs):
            raise ConsensusError("block transactions must be bytes")

    def header_json(self) -> dict[str, Any]:
        """The JSON value whose canonical bytes are hashed: the block without its
        transactions, which ``txs_root`` and ``tx_count`` stand for."""
        return {
            "type": BLOCK_TYPE,
            "height": self.height,
            "prev_hash": self.prev_hash.hex(),
            "txs_root": txs_root(self.txs).hex(),
            "tx_count": len(self.txs),
            "log_root": self.log_root.hex(),
            "log_size": self.log_size,
            "proposer": self.proposer,
        }

    def to_json(self) -> dict[str, Any]:
        """The block as it travels and is stored, transactions as hex."""
        return {
            "type": BLOCK_TYPE,
            "height": self.height,
            "prev_hash": self.prev_hash.hex(),
            "txs": [tx.hex() for tx in self.txs],
            "log_root": self.log_root.hex(),
            "log_size": self.log_size,
            "proposer": self.proposer,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Block:
        """Inverse of :meth:`to_json`; raises :class:`ConsensusError` on a malformed value."""
        try:
            if data["type"] != BLOCK_TYPE:
                raise ConsensusError(f"not a block: type {data['type']!r}")
            return cls(
                height=int(data["height"]),
                prev_hash=bytes.fromhex(data["prev_hash"]),
                txs=tuple(bytes.fromhex(tx) for tx in data["txs"]),
                log_root=bytes.fromhex(data["log_root"]),
                log_size=int(data["log_size"]),
                proposer=str(data["proposer"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConsensusError(f"malformed block: {exc}") from None

    def canonical_bytes(self) -> bytes:
        """RFC 8785 bytes of :meth:`header_json`."""
        return canonical_json(self.header_json())

    def hash(self) -> bytes:
        """sha256 of the canonical bytes (cached; the block is immutable)."""
        cached: bytes | None = self.__dict__.get("_hash")
        if cached is None:
            cached = hashlib.sha256(self.canonical_bytes()).digest()
            object.__setattr__(self, "_hash", cached)
        return cached


def vote_sign_bytes(
    kind: VoteKind, height: int, round: int, block_hash: bytes | None, validator: str
) -> bytes:
    """The exact bytes a validator signs for a vote (``block_hash`` None is nil)."""
    return canonical_json(
        {
            "type": VOTE_TYPE,
            "kind": str(kind),
            "height": height,
            "round": round,
            "block_hash": None if block_hash is None else block_hash.hex(),
            "validator": validator,
        }
    )


@dataclass(frozen=True)
class ValidatorSet:
    """The genesis validators, in order; the order fixes the round-robin proposer."""

    members: tuple[tuple[str, Ed25519PublicKey], ...]

    def __post_init__(self) -> None:
        if not self.members:
            raise ConsensusError("a validator set needs at least one validator")
        ids = [vid for vid, _ in self.members]
        if len(set(ids)) != len(ids):
            raise ConsensusError("validator ids must be distinct")

    @classmethod
    def of(cls, members: Sequence[tuple[str, Ed25519PublicKey]]) -> ValidatorSet:
        """Build from any sequence of (id, public key)."""
        return cls(tuple(members))

    @property
    def ids(self) -> tuple[str, ...]:
        """Validator ids in genesis order."""
        return tuple(vid for vid, _ in self.members)

    @property
    def keys(self) -> dict[str, Ed25519PublicKey]:
        """id → public key."""
        return dict(self.members)

    @property
    def n(self) -> int:
        """Number of validators."""
        return len(self.members)

    @property
    def quorum(self) -> int:
        """2f+1."""
        return quorum_size(self.n)

    @property
    def skip(self) -> int:
        """f+1."""
        return skip_size(self.n)

    def proposer(self, height: int, round: int) -> str:
        """proposer(h, r) = validators[(h + r) mod n]."""
        return self.members[(height + round) % self.n][0]


@dataclass(frozen=True)
class CommitSig:
    """One validator's precommit signature inside a certificate."""

    validator: str
    signature: bytes


@dataclass(frozen=True)
class CommitCertificate:
    """Proof that 2f+1 validators precommitted ``block_hash`` at (height, round)."""

    height: int
    round: int
    block_hash: bytes
    signatures: tuple[CommitSig, ...]

    def to_json(self) -> dict[str, Any]:
        """JSON form: bytes as hex, signatures sorted by validator id."""
        return {
            "type": "farm-ledger/commit/v1",
            "height": self.height,
            "round": self.round,
            "block_hash": self.block_hash.hex(),
            "signatures": [
                {"validator": s.validator, "signature": s.signature.hex()}
                for s in sorted(self.signatures, key=lambda s: s.validator)
            ],
        }


def verify_commit_certificate(
    cert: CommitCertificate,
    block_hash: bytes,
    validators: Mapping[str, Ed25519PublicKey],
    *,
    height: int | None = None,
) -> None:
    """Check that ``cert`` proves a commit of ``block_hash`` (at ``height`` if given).

    Every signature must come from a known validator and verify; a validator listed
    twice is counted once. Fails closed: an empty validator set never verifies.

    Raises:
        ConsensusError: wrong height or hash, unknown signer, bad signature, or fewer
            than 2f+1 distinct signers (message "2/4 precommits, need 3").
    """
    if not validators:
        raise ConsensusError("no validators: a certificate cannot verify against nobody")
    if height is not None and cert.height != height:
        raise ConsensusError(f"certificate is for height {cert.height}, expected {height}")
    if cert.block_hash != block_hash:
        raise ConsensusError(
            f"certificate is for block {cert.block_hash.hex()[:16]}…, "
            f"expected {block_hash.hex()[:16]}…"
        )
    signers: set[str] = set()
    for sig in cert.signatures:
        key = validators.get(sig.validator)
        if key is None:
            raise ConsensusError(f"precommit from unknown validator {sig.validator!r}")
        message = vote_sign_bytes(
            VoteKind.PRECOMMIT, cert.height, cert.round, cert.block_hash, sig.validator
        )
        if not ed25519.verify(key, sig.signature, message):
            raise ConsensusError(
                f"bad precommit signature from {sig.validator!r} for height {cert.height} "
                f"round {cert.round}"
            )
        signers.add(sig.validator)
    need = quorum_size(len(validators))
    if len(signers) < need:
        raise ConsensusError(f"{len(signers)}/{len(validators)} precommits, need {need}")
