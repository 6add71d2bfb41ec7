"""The Merkle log and its proof verifiers: re-exported from :mod:`farm.merkle`.

The code lives in ``farm/`` so that the coordinator checks receipts with the same code
as the validators and the consumer, without importing the ledger package (ADR 0030).
"""

from __future__ import annotations

from farm.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    MerkleLog,
    consistency_proof_length,
    hash_children,
    hash_leaf,
    inclusion_proof_length,
    root,
    verify_consistency,
    verify_inclusion,
)

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MerkleLog",
    "consistency_proof_length",
    "hash_children",
    "hash_leaf",
    "inclusion_proof_length",
    "root",
    "verify_consistency",
    "verify_inclusion",
]
