"""What the coordinator believes of a validator's answer: pure checks, no I/O.

A validator is one of 3f+1; up to f may lie. So the coordinator believes neither a
single 200 nor a single 400 (ADR 0030):

- **A receipt** (:class:`Receipt`, the body of a 200 to ``POST /v1/tx``) counts only
  once :func:`check_receipt` has shown that it names the transaction sent, that the
  leaf at its index is that transaction's leaf hash, that the inclusion proof leads to
  the root of a checkpoint, and that at least 2f+1 validators of the genesis co-signed
  that checkpoint. The proof and checkpoint checks are the ones the validators and
  the consumer use (:mod:`farm.merkle`, :mod:`farm.checkpoint`): there is one
  implementation.
- **A refusal** (a 400) is final only when :func:`final_refusal` finds f+1 distinct
  validators that give the same reason and show a log at least as long as the one the
  transaction depends on (its builders' enrollments, the attestation it revokes). At
  least one of any f+1 validators is honest, and an honest validator that has applied
  every entry the transaction depends on refuses it for a reason every honest validator
  at that point shares: validation is deterministic (:mod:`ledger.state`). A stale
  validator (behind the dependency) or a lying one cannot make a refusal final alone.

Invariant: nothing here returns a :class:`VerifiedReceipt` without every check above;
a failing check raises :class:`ReceiptError` saying which.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict

from farm.checkpoint import Checkpoint, signature_threshold, verify_checkpoint
from farm.errors import CheckpointError, LedgerError, ProofError
from farm.genesis import Genesis
from farm.merkle import hash_leaf, verify_inclusion
from farm.transactions import tx_id

__all__ = [
    "LedgerTrust",
    "Receipt",
    "ReceiptError",
    "Refusal",
    "UntrustedCheckpointError",
    "VerifiedReceipt",
    "check_included",
    "check_receipt",
    "final_refusal",
]


class ReceiptError(LedgerError):
    """A validator's receipt that does not prove the transaction was committed."""


class UntrustedCheckpointError(ReceiptError):
    """Only the receipt's checkpoint failed (none, malformed, or fewer than 2f+1 genesis
    co-signatures): a newer checkpoint from that validator may still prove the entry."""


class Receipt(BaseModel):
    """A validator's answer to a committed transaction, as received (unchecked)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    index: int
    tx_id: str
    height: int
    tree_size: int
    inclusion_proof: tuple[str, ...]
    checkpoint: str | None


@dataclass(frozen=True)
class VerifiedReceipt:
    """A receipt :func:`check_receipt` proved: the transaction is entry ``index`` of the
    log of ``tree_size`` entries that ``checkpoint`` (2f+1 co-signed) names.

    ``height`` is the block height the validator reported; nothing proves it."""

    index: int
    tx_id: str
    height: int
    tree_size: int
    inclusion_proof: tuple[str, ...]
    checkpoint: str


@dataclass(frozen=True)
class LedgerTrust:
    """The validators a receipt must be co-signed by, from the ledger's genesis."""

    origin: str
    validators: Mapping[str, Ed25519PublicKey]
    threshold: int
    """2f+1 of n = 3f+1: co-signatures a checkpoint needs."""
    faults: int
    """f: validators that may lie; f+1 agreeing refusals include an honest one."""

    @classmethod
    def from_genesis(cls, genesis: Genesis) -> LedgerTrust:
        """The trust of ``genesis`` (checkpoint origin = its chain id)."""
        return cls(
            origin=genesis.chain_id,
            validators={v.name: v.ed25519_key() for v in genesis.validators},
            threshold=signature_threshold(genesis.n),
            faults=genesis.f,
        )


def check_included(
    tx: bytes, index: int, tree_size: int, proof: Sequence[str], note: str, trust: LedgerTrust
) -> Checkpoint:
    """The checkpoint ``note`` once it is 2f+1 co-signed, names ``tree_size`` entries,
    and ``proof`` shows ``tx`` is its entry ``index``.

    Raises:
        UntrustedCheckpointError: the checkpoint is malformed, for another ledger or
            has fewer than 2f+1 genesis co-signatures.
        ReceiptError: the checkpoint names another size, or the entry is not ``tx``
            at ``index``.
    """
    try:
        checkpoint = verify_checkpoint(note, trust.validators, trust.threshold, trust.origin)
    except CheckpointError as exc:
        raise UntrustedCheckpointError(f"checkpoint not trusted: {exc}") from None
    if checkpoint.size != tree_size:
        raise ReceiptError(
            f"the proof is for tree size {tree_size}, the checkpoint names {checkpoint.size}"
        )
    try:
        path = [bytes.fromhex(h) for h in proof]
        verify_inclusion(hash_leaf(tx), index, tree_size, path, checkpoint.root_hash)
    except (ValueError, ProofError) as exc:
        raise ReceiptError(
            f"entry {index} of the co-signed log is not the transaction sent: {exc}"
        ) from None
    return checkpoint


def check_receipt(receipt: Receipt, tx: bytes, trust: LedgerTrust) -> VerifiedReceipt:
    """``receipt`` as a :class:`VerifiedReceipt` for ``tx``, once proven.

    Raises:
        UntrustedCheckpointError: no checkpoint, or one :func:`check_included` does
            not trust.
        ReceiptError: it names another transaction, or fails :func:`check_included`.
    """
    sent = tx_id(tx)
    if receipt.tx_id != sent:
        raise ReceiptError(f"the receipt is for tx {receipt.tx_id[:12]}, not {sent[:12]}")
    if receipt.checkpoint is None:
        raise UntrustedCheckpointError("the receipt carries no checkpoint")
    check_included(
        tx, receipt.index, receipt.tree_size, receipt.inclusion_proof, receipt.checkpoint, trust
    )
    return VerifiedReceipt(
        index=receipt.index,
        tx_id=sent,
        height=receipt.height,
        tree_size=receipt.tree_size,
        inclusion_proof=tuple(receipt.inclusion_proof),
        checkpoint=receipt.checkpoint,
    )


@dataclass(frozen=True)
class Refusal:
    """One validator's 400 to a transaction, and the log size it showed then."""

    validator: str
    """The validator's URL (distinct URLs are taken as distinct validators)."""
    reason: str
    log_size: int | None
    """Entries in its log (``GET /v1/status``), None when it did not say."""


def final_refusal(refusals: Sequence[Refusal], after: int, trust: LedgerTrust) -> str | None:
    """The reason to record as final, or None while a refusal may still be transient.

    Final: at least f+1 distinct validators whose logs hold at least ``after`` entries
    (the transaction's dependencies are applied there) give that same reason. Refusals
    from validators behind ``after``, or that did not show their size, do not count.
    """
    by_reason: dict[str, set[str]] = {}
    for r in refusals:
        if r.log_size is not None and r.log_size >= after:
            by_reason.setdefault(r.reason, set()).add(r.validator)
    for reason, validators in sorted(by_reason.items()):
        if len(validators) >= trust.faults + 1:
            return reason
    return None
