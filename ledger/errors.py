"""Errors of the ledger package, rooted at :class:`farm.errors.LedgerError`.

ProofError and CheckpointError are defined in :mod:`farm.errors` (the proof and
checkpoint checks live in ``farm/``, ADR 0030) and re-exported here.

The tree::

    LedgerError
    ├── ProofError          an inclusion or consistency proof that does not verify
    ├── CheckpointError     a checkpoint that is malformed or lacks enough known signatures
    ├── ConsensusError      a consensus message or certificate that does not verify
    │   └── DoubleSignError a validator was about to sign a second, different vote
    ├── TransactionError    a transaction refused by validation (its message is the reason)
    └── StorageError        a ledger store that cannot be opened, read or written
"""

from __future__ import annotations

from farm.errors import CheckpointError, LedgerError, ProofError, TransactionError

__all__ = [
    "CheckpointError",
    "ConsensusError",
    "DoubleSignError",
    "LedgerError",
    "ProofError",
    "StorageError",
    "TransactionError",
]


class ConsensusError(LedgerError):
    """A consensus message, vote or commit certificate that does not verify."""


class DoubleSignError(ConsensusError):
    """Refused to sign: a different value was already signed for this height, round, step."""


class StorageError(LedgerError):
    """A ledger store that cannot be opened, read or written, or belongs to another chain."""
