"""What only validators need of transactions: the operator signature check against
the genesis operators and the light summary used by storage and replay.

The transaction models and their wire form are defined once, in :mod:`farm.transactions`
(the coordinator builds transactions without importing the ledger). Whether a
transaction fits the state (enrolled keys, duplicates, what is attested) is
:mod:`ledger.state`'s job.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping

from securesystemslib.exceptions import UnverifiedSignatureError, VerificationError
from securesystemslib.signer import Signature, SSlibKey

from farm.transactions import (
    OperatorTx,
    signed_bytes,
)
from ledger.errors import TransactionError

__all__ = ["summarize_tx", "verify_operator_signature"]


def verify_operator_signature(
    tx: OperatorTx, operators: Mapping[str, SSlibKey], chain_id: str
) -> str | None:
    """None if ``tx`` is meant for the ledger ``chain_id`` and signed by one of
    ``operators``, else the reason it is not."""
    if tx.chain != chain_id:
        return (
            f"{tx.type} is signed for ledger {tx.chain!r}, this ledger is {chain_id!r} "
            "(an operator transaction counts only on the chain it names)"
        )
    key = operators.get(tx.operator)
    if key is None:
        return f"{tx.type} signed by unknown operator {tx.operator[:12]}…"
    try:
        key.verify_signature(Signature(tx.operator, tx.signature), signed_bytes(tx))
    except (UnverifiedSignatureError, VerificationError):
        return f"{tx.type} signature of operator {tx.operator[:12]}… does not verify"
    return None


def summarize_tx(data: bytes) -> tuple[str, tuple[str, ...]]:
    """(type, attested sha256s) of a transaction already validated and committed.

    A light parse (no model, no signature check) for storage and replay: for an attest
    transaction the subjects of the coordinator's statement, else no artifacts.
    Raises :class:`TransactionError` if the bytes do not even have that shape.
    """
    try:
        value = json.loads(data)
        kind = str(value["type"])
        if kind != "attest":
            return kind, ()
        payload = base64.b64decode(value["bundle"]["envelope"]["payload"], validate=True)
        subjects = json.loads(payload)["subject"]
        return kind, tuple(str(s["digest"]["sha256"]) for s in subjects)
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise TransactionError(f"not a committed transaction: {exc}") from None
