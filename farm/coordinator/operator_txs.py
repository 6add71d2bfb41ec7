"""Operator transactions the coordinator relays: signed elsewhere, checked here, never
made here.

The operator signs enroll, retire and revoke transactions where they work
(:mod:`farm.operator`: ``farm operator approve``, ``farm operator retire``,
``farm revoke``); the coordinator receives the bytes, checks them and submits them to
the validators as they are. It holds no operator key and reads none (ADR 34).

:func:`check_relayed` refuses, before anything is stored or relayed, bytes that are
not the expected kind of transaction, that name another chain, or whose signature is
not by an operator of the genesis the coordinator was started with: the validators
would refuse them too, but the operator learns it now, in the answer to the request,
and the coordinator never records an approval, retirement or revocation the ledger
cannot take. The validators still check everything themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from securesystemslib.signer import SSlibKey

from farm.coordinator.errors import BadRequestError, PermissionDeniedError
from farm.errors import TransactionError
from farm.transactions import (
    EnrollTx,
    RetireTx,
    RevokeTx,
    decode_tx,
    verify_operator_signature,
)

__all__ = ["OperatorTrust", "check_relayed"]

T = TypeVar("T", EnrollTx, RetireTx, RevokeTx)

_KIND: dict[type, str] = {EnrollTx: "enroll", RetireTx: "retire", RevokeTx: "revoke"}


class OperatorTrust:
    """The genesis operator keys and the chain id relayed transactions must match."""

    def __init__(self, operators: Mapping[str, SSlibKey], chain: str) -> None:
        self.operators = dict(operators)
        self.chain = chain


def check_relayed(data: str | bytes, kind: type[T], trust: OperatorTrust) -> tuple[T, bytes]:
    """The decoded transaction and its exact bytes, if ``data`` is a ``kind``
    transaction for ``trust.chain`` signed by one of ``trust.operators``.

    Raises:
        BadRequestError: not a transaction, or another kind.
        PermissionDeniedError: for another chain, or not signed by a genesis operator.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        tx = decode_tx(raw)
    except TransactionError as exc:
        raise BadRequestError(f"not an operator transaction: {exc}") from None
    if not isinstance(tx, kind):
        raise BadRequestError(f"a {_KIND[kind]} transaction was expected, this is a {tx.type}")
    reason = verify_operator_signature(tx, trust.operators, trust.chain)
    if reason is not None:
        raise PermissionDeniedError(
            f"{reason}; sign it with an operator key of this ledger's genesis "
            "(farm operator approve/retire, farm revoke --key)"
        )
    return tx, raw
