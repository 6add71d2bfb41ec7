"""Client-side verification of what the ledger serves, with no server and no state.

The distribution node and every consumer (``farm verify``, ``farm pull``) use this
module and only this module to decide whether to believe the ledger.

The trust rule
--------------

A consumer pins the ledger's validator keys (the ``vkey`` strings made by
:func:`encode_vkey`, parsed with :func:`parse_vkey`) and a threshold. With
n = 3f+1 validators the threshold is 2f+1 (:func:`signature_threshold` gives the
smallest count above two thirds for any n). Then, in this order:

1. :func:`verify_checkpoint` accepts a checkpoint (origin, tree size, root hash) only
   if at least ``threshold`` distinct pinned keys signed it validly. Up to f faulty
   validators cannot produce such a checkpoint alone, and cannot prevent one either.
2. :func:`verify_inclusion` shows that an entry's leaf hash is in the tree that the
   trusted checkpoint names.
3. :func:`verify_consistency` shows that a newer trusted checkpoint extends an older
   one; a client that remembers its last checkpoint refuses a log that was rewritten.

Each function returns only when the check passes and raises a
:class:`~ledger.errors.LedgerError` subclass (CheckpointError, ProofError) otherwise;
there is no boolean result to forget to test.

Commit certificates
-------------------

Verification of a block's consensus commit certificate (2f+1 precommit signatures)
belongs with the consensus code; it is to be re-exported here, next to the three
checks above, once that code exists.
"""

from __future__ import annotations

from ledger.checkpoint import (
    Checkpoint,
    encode_vkey,
    parse_vkey,
    signature_threshold,
    verify_checkpoint,
)
from ledger.merkle import hash_leaf, verify_consistency, verify_inclusion

__all__ = [
    "Checkpoint",
    "encode_vkey",
    "hash_leaf",
    "parse_vkey",
    "signature_threshold",
    "verify_checkpoint",
    "verify_consistency",
    "verify_inclusion",
]
