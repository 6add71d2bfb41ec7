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
   :func:`verify_fresh_checkpoint` does the same and also refuses a checkpoint whose
   :func:`cosigned_time` (the time ``threshold`` validators vouch for, from their
   C2SP cosignature/v1 timestamps) is older than the caller's maximum age, or in the
   future by more than :data:`MAX_CLOCK_SKEW`: a node, or a halted ledger, cannot
   freeze a client on an old view. Validators re-cosign the latest checkpoint every
   few seconds while the log is idle, so an honest ledger's checkpoint stays fresh.
2. :func:`verify_inclusion` shows that an entry's leaf hash is in the tree that the
   trusted checkpoint names.
3. :func:`verify_consistency` shows that a newer trusted checkpoint extends an older
   one; a client that remembers its last checkpoint refuses a log that was rewritten.

Each function returns only when the check passes and raises a
:class:`~ledger.errors.LedgerError` subclass (CheckpointError, ProofError,
ConsensusError) otherwise; there is no boolean result to forget to test.

Commit certificates
-------------------

:func:`verify_commit_certificate` checks that a block (by its hash) was committed by
consensus: 2f+1 distinct known validators precommitted it at that height and round.
A follower that replays blocks (the distribution node, a validator catching up)
checks each block's certificate with it before believing the block.
"""

from __future__ import annotations

from ledger.block import verify_commit_certificate
from ledger.checkpoint import (
    MAX_CLOCK_SKEW,
    Checkpoint,
    cosigned_time,
    encode_vkey,
    parse_vkey,
    signature_threshold,
    verify_checkpoint,
    verify_fresh_checkpoint,
)
from ledger.merkle import hash_leaf, verify_consistency, verify_inclusion

__all__ = [
    "MAX_CLOCK_SKEW",
    "Checkpoint",
    "cosigned_time",
    "encode_vkey",
    "hash_leaf",
    "parse_vkey",
    "signature_threshold",
    "verify_checkpoint",
    "verify_commit_certificate",
    "verify_consistency",
    "verify_fresh_checkpoint",
    "verify_inclusion",
]
