"""Co-signed checkpoints and their checks: re-exported from :mod:`farm.checkpoint`.

The code lives in ``farm/`` so that the coordinator checks receipts with the same code
as the validators and the consumer, without importing the ledger package (ADR 0030).
"""

from __future__ import annotations

from farm.checkpoint import (
    MAX_CLOCK_SKEW,
    MAX_NOTE_BYTES,
    MAX_SIGNATURES,
    MAX_TIMESTAMP,
    Checkpoint,
    NoteSignature,
    PublicKeyLike,
    SignatureTally,
    SignedNote,
    cosign_checkpoint,
    cosignature_key_id,
    cosignature_message,
    cosignature_time,
    cosignatures,
    cosigned_time,
    encode_vkey,
    key_id,
    merge_signatures,
    parse_note,
    parse_vkey,
    sign_checkpoint,
    signature_threshold,
    tally_signatures,
    verify_checkpoint,
    verify_fresh_checkpoint,
)

__all__ = [
    "MAX_CLOCK_SKEW",
    "MAX_NOTE_BYTES",
    "MAX_SIGNATURES",
    "MAX_TIMESTAMP",
    "Checkpoint",
    "NoteSignature",
    "PublicKeyLike",
    "SignatureTally",
    "SignedNote",
    "cosign_checkpoint",
    "cosignature_key_id",
    "cosignature_message",
    "cosignature_time",
    "cosignatures",
    "cosigned_time",
    "encode_vkey",
    "key_id",
    "merge_signatures",
    "parse_note",
    "parse_vkey",
    "sign_checkpoint",
    "signature_threshold",
    "tally_signatures",
    "verify_checkpoint",
    "verify_fresh_checkpoint",
]
