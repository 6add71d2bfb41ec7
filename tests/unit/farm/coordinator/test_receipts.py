"""The pure checks of a validator's answers: receipts against the transaction sent, the
proof and the co-signature threshold; refusals against f+1 and the log size.

Receipts are made with real Merkle proofs and real Ed25519 co-signatures
(tests/unit/farm/coordinator/_ledger.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from farm.coordinator.receipts import (
    Receipt,
    ReceiptError,
    Refusal,
    UntrustedCheckpointError,
    check_receipt,
    final_refusal,
)
from farm.transactions import tx_id
from tests.support.import_graph import closure, import_graph
from tests.unit.farm.coordinator._ledger import STRANGERS, TRUST1, TRUST4, SignedLog

TX = b'{"type":"attest","n":1}'
OTHER = b'{"type":"attest","n":2}'


def _log() -> tuple[SignedLog, int]:
    signed = SignedLog()
    signed.append(b"first")
    index = signed.append(TX)
    signed.append(OTHER)
    signed.append(b"last")
    return signed, index


def test_a_true_receipt_is_proven_with_all_or_2f_plus_1_cosignatures() -> None:
    signed, index = _log()
    for signers in (["v0", "v1", "v2", "v3"], ["v3", "v1", "v0"]):
        got = check_receipt(
            Receipt.model_validate(signed.receipt(index, signers=signers)), TX, TRUST4
        )
        assert (got.index, got.tx_id, got.tree_size) == (index, tx_id(TX), 4)
        assert got.checkpoint.count("— v") == len(signers)


def _tamper_proof(r: dict[str, Any]) -> None:
    first = r["inclusion_proof"][0]
    r["inclusion_proof"][0] = ("0" if first[0] != "0" else "1") + first[1:]


def _other_index(r: dict[str, Any]) -> None:
    r["index"] = 2  # the entry there is OTHER, not TX


def _other_tx_id(r: dict[str, Any]) -> None:
    r["tx_id"] = tx_id(OTHER)


def _other_size(r: dict[str, Any]) -> None:
    r["tree_size"] = 3


def _short_proof(r: dict[str, Any]) -> None:
    r["inclusion_proof"] = r["inclusion_proof"][:-1]


def _not_hex(r: dict[str, Any]) -> None:
    r["inclusion_proof"][0] = "zz"


@pytest.mark.parametrize(
    ("forge", "match"),
    [
        (_tamper_proof, "not the transaction sent"),
        (_other_index, "not the transaction sent"),
        (_short_proof, "not the transaction sent"),
        (_not_hex, "not the transaction sent"),
        (_other_tx_id, "the receipt is for tx"),
        (_other_size, "tree size 3, the checkpoint names 4"),
    ],
)
def test_a_forged_receipt_is_refused(forge: Callable[[dict[str, Any]], None], match: str) -> None:
    signed, index = _log()
    body = signed.receipt(index)
    forge(body)
    with pytest.raises(ReceiptError, match=match) as caught:
        check_receipt(Receipt.model_validate(body), TX, TRUST4)
    assert not isinstance(caught.value, UntrustedCheckpointError)


@pytest.mark.parametrize(
    ("note", "match"),
    [
        ({"signers": ["v0", "v1"]}, "checkpoint not trusted"),  # 2 < 2f+1 = 3
        ({"signers": ["v0"]}, "checkpoint not trusted"),
        ({"keys": STRANGERS}, "checkpoint not trusted"),  # genesis names, other keys
        ({"signers": ["v0", "v1"], "keys": {**STRANGERS}}, "checkpoint not trusted"),
    ],
)
def test_a_checkpoint_without_2f_plus_1_genesis_cosignatures_is_not_trusted(
    note: dict[str, Any], match: str
) -> None:
    signed, index = _log()
    with pytest.raises(UntrustedCheckpointError, match=match):
        check_receipt(Receipt.model_validate(signed.receipt(index, **note)), TX, TRUST4)


def test_a_receipt_without_checkpoint_or_for_another_ledger_is_not_trusted() -> None:
    signed, index = _log()
    body = signed.receipt(index)
    with pytest.raises(UntrustedCheckpointError, match="no checkpoint"):
        check_receipt(Receipt.model_validate({**body, "checkpoint": None}), TX, TRUST4)
    other_origin = body["checkpoint"].replace("farm-testnet\n", "farm-other\n", 1)
    with pytest.raises(UntrustedCheckpointError):
        check_receipt(Receipt.model_validate({**body, "checkpoint": other_origin}), TX, TRUST4)


def test_one_validator_suffices_only_in_a_one_validator_genesis() -> None:
    signed, index = _log()
    body = Receipt.model_validate(signed.receipt(index, signers=["v0"]))
    assert check_receipt(body, TX, TRUST1).index == index
    with pytest.raises(UntrustedCheckpointError):
        check_receipt(body, TX, TRUST4)


NOT_ENROLLED = "builder b1 is not enrolled"


@pytest.mark.parametrize(
    ("refusals", "after", "trust", "final"),
    [
        # f+1 = 2 validators at or past the dependency, same reason: final.
        ([("a", NOT_ENROLLED, 5), ("b", NOT_ENROLLED, 7)], 5, TRUST4, NOT_ENROLLED),
        # One refusal of four validators: a liar or a stale one may have said it.
        ([("a", NOT_ENROLLED, 9)], 5, TRUST4, None),
        # The same validator twice counts once.
        ([("a", NOT_ENROLLED, 9), ("a", NOT_ENROLLED, 9)], 5, TRUST4, None),
        # A validator behind the dependency (or that hides its size) does not count.
        ([("a", NOT_ENROLLED, 9), ("b", NOT_ENROLLED, 4)], 5, TRUST4, None),
        ([("a", NOT_ENROLLED, 9), ("b", NOT_ENROLLED, None)], 5, TRUST4, None),
        # Different reasons do not add up.
        ([("a", NOT_ENROLLED, 9), ("b", "already enrolled", 9)], 5, TRUST4, None),
        # A one-validator ledger: its own refusal at or past the dependency is final.
        ([("a", NOT_ENROLLED, 5)], 5, TRUST1, NOT_ENROLLED),
        ([("a", NOT_ENROLLED, 4)], 5, TRUST1, None),
        ([], 0, TRUST1, None),
    ],
)
def test_a_refusal_is_final_with_f_plus_1_validators_at_or_past_the_dependency(
    refusals: list[tuple[str, str, int | None]], after: int, trust: Any, final: str | None
) -> None:
    assert final_refusal([Refusal(*r) for r in refusals], after, trust) == final


def test_the_coordinator_checks_receipts_without_importing_the_ledger_package() -> None:
    # The checks are shared through farm/ (farm.merkle, farm.checkpoint, farm.genesis);
    # what the coordinator runs reaches no module of the validators' package.
    top = Path(__file__).resolve().parents[4]
    graph = import_graph(top, ("farm", "builders", "ledger", "api"))
    start = [m for m in graph if m.startswith(("farm.coordinator", "api.coordinator"))]
    assert "farm.coordinator.receipts" in start
    assert sorted(m for m in closure(graph, start) if m.split(".")[0] == "ledger") == []
