"""What only validators need of transactions: the light summary used by storage and
replay. (The operator signature check, which the coordinator and the consumer run
too, is :func:`farm.transactions.verify_operator_signature`.)

The transaction models and their wire form are defined once, in :mod:`farm.transactions`
(the coordinator builds transactions without importing the ledger). Whether a
transaction fits the state (enrolled keys, duplicates, what is attested) is
:mod:`ledger.state`'s job.
"""

from __future__ import annotations

import base64
import binascii
import json

from ledger.errors import TransactionError

__all__ = ["summarize_tx"]


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
