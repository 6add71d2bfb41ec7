"""Errors of the consumer (``farm pull``, ``farm verify``), rooted at :class:`FarmError`.

The tree::

    FarmError
    └── ConsumerError            something stopped a pull or a verification
        ├── RefusedError         the artifact is not what the ledger proves: do not use it
        │   ├── DigestError      the bytes are not the artifact's (tampered, mixed up)
        │   ├── EvidenceError    the attestation, an inclusion proof or an enrollment is wrong
        │   ├── StaleError       the checkpoint is older than the allowed age (freeze)
        │   ├── RollbackError    the ledger is smaller than, or not an extension of, what
        │   │                    this machine has seen (rollback, fork)
        │   └── RevokedError     an operator revoked the artifact on the ledger
        └── NodeError            the node cannot be reached, or answered what HTTP forbids
                                 (including more bytes than it declared: endless data)

Every message is one line that says what failed, for which artifact, and what to do.
Ledger and attestation errors (CheckpointError, ProofError, SignatureError,
QuorumError) are wrapped into a :class:`RefusedError` subclass by the verifier, so the
command line has one place that prints them.
"""

from __future__ import annotations

from farm.errors import FarmError

__all__ = [
    "ConsumerError",
    "DigestError",
    "EvidenceError",
    "NodeError",
    "RefusedError",
    "RevokedError",
    "RollbackError",
    "StaleError",
]


class ConsumerError(FarmError):
    """A pull or verification that did not succeed."""


class RefusedError(ConsumerError):
    """The artifact is refused: what the node sent is not what the ledger proves."""


class DigestError(RefusedError):
    """The bytes do not hash to the attested digest, or the evidence is for other bytes."""


class EvidenceError(RefusedError):
    """The attestation, the ledger entry, a proof or an enrollment does not verify."""


class StaleError(RefusedError):
    """The checkpoint is older than the maximum age (a frozen node or ledger)."""


class RollbackError(RefusedError):
    """The ledger shown is smaller than, or inconsistent with, what was seen before."""


class RevokedError(RefusedError):
    """An operator revoked the artifact on the ledger."""


class NodeError(ConsumerError):
    """The distribution node is unreachable or broke the protocol."""
