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

Revoked artifacts
-----------------

Every checkpoint commits to the set of revoked artifacts at its size (one extension
line, :mod:`ledger.revoked_set`): :func:`commitment_of` reads (count, root) from a
trusted checkpoint and :func:`verify_absent` checks an :class:`AbsenceProof` that an
artifact is not in it, so whoever serves an artifact cannot hide its revocation.

Equivocation evidence
---------------------

:func:`verify_equivocation` checks one record of ``GET /v1/evidence`` (or any value
with ``validator``, ``first`` and ``second`` in wire form) against the genesis
validator keys: both messages are validly signed by the named validator, are for the
same height, round and kind (proposal, prevote or precommit), and name different
values (block hashes, nil for a nil vote). Such a pair is proof on its own that the
validator is faulty: an honest one signs one value per slot (its vote guard refuses
any other), so nobody needs to trust the node that served it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from farm import ed25519
from farm.checkpoint import (
    MAX_CLOCK_SKEW,
    Checkpoint,
    cosigned_time,
    encode_vkey,
    parse_vkey,
    signature_threshold,
    verify_checkpoint,
    verify_fresh_checkpoint,
)
from farm.merkle import hash_leaf, verify_consistency, verify_inclusion
from ledger.block import verify_commit_certificate
from ledger.errors import ConsensusError
from ledger.messages import Equivocation, Message, message_from_json, message_kind, message_value
from ledger.revoked_set import AbsenceProof, commitment_of, verify_absent

__all__ = [
    "MAX_CLOCK_SKEW",
    "AbsenceProof",
    "Checkpoint",
    "Equivocation",
    "commitment_of",
    "cosigned_time",
    "encode_vkey",
    "hash_leaf",
    "parse_vkey",
    "signature_threshold",
    "verify_absent",
    "verify_checkpoint",
    "verify_commit_certificate",
    "verify_consistency",
    "verify_equivocation",
    "verify_fresh_checkpoint",
    "verify_inclusion",
]


def _slot(msg: Message) -> tuple[int, int, str]:
    """(height, round, kind) of a consensus message."""
    return msg.height, msg.round, message_kind(msg)


def verify_equivocation(
    record: Mapping[str, Any], validators: Mapping[str, Ed25519PublicKey | bytes]
) -> Equivocation:
    """Check that ``record`` proves its ``validator`` signed two different values for
    one (height, round, kind); ``validators`` maps names to public keys (the genesis).

    ``height``, ``round`` and ``kind``, if the record states them, must be those of
    the messages. Whether a proposal came from the proposer of its round is not
    checked: two conflicting signed proposals are a fault whoever's turn it was.

    Returns:
        The parsed evidence.

    Raises:
        ConsensusError: no validators, an unknown validator, a malformed message, a
            message signed by someone else or not validly signed, messages of
            different slots, or the same value twice (no conflict).
    """
    if not validators:
        raise ConsensusError("no validators: evidence cannot verify against nobody")
    name = record.get("validator")
    if not isinstance(name, str) or name not in validators:
        raise ConsensusError(f"evidence against {name!r}, who is not a known validator")
    key = validators[name]
    try:
        pair = [message_from_json(dict(record[part])) for part in ("first", "second")]
    except (KeyError, TypeError, ValueError) as exc:
        raise ConsensusError(f"evidence needs two messages in wire form: {exc}") from None
    first, second = pair
    for part, msg in zip(("first", "second"), pair, strict=True):
        if msg.sender != name:
            raise ConsensusError(f"the {part} message is by {msg.sender!r}, not {name!r}")
        if not ed25519.verify(key, msg.signature, msg.sign_bytes()):
            raise ConsensusError(f"the {part} message does not carry a valid signature of {name!r}")
    slot = _slot(first)
    if _slot(second) != slot:
        raise ConsensusError(
            f"the messages are for different slots (height, round, kind): {slot} and "
            f"{_slot(second)}"
        )
    claimed = tuple(
        record.get(k, v) for k, v in zip(("height", "round", "kind"), slot, strict=True)
    )
    if claimed != slot:
        raise ConsensusError(f"the record names slot {claimed}, its messages {slot}")
    if message_value(first) == message_value(second):
        raise ConsensusError(f"both messages of {name!r} at {slot} are for the same value")
    return Equivocation(name, first, second)
