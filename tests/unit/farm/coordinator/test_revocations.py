"""Revocations through the publisher, and the ledger reads with failover (fake validator)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from farm.canonical import canonical_json
from farm.coordinator import attestations, revocations
from farm.coordinator.errors import (
    BadRequestError,
    ConflictError,
    LedgerUnavailableError,
    NotFoundError,
    PermissionDeniedError,
)
from farm.coordinator.ledger_client import LedgerClient, LedgerPublisher
from farm.coordinator.models import (
    LedgerCheckpointPublic,
    LedgerStatusPublic,
    Revocation,
    RevocationCreate,
)
from farm.coordinator.operator_txs import check_relayed
from farm.coordinator.scheduler import request_build
from farm.keys import generate_key
from farm.transactions import RetireTx, RevokeTx, decode_tx, make_revoke
from tests.unit.farm.coordinator._ledger import CHAIN, TRUST4
from tests.unit.farm.coordinator._world import GOOD, NOW, recipe, sha
from tests.unit.farm.coordinator.test_ledger_client import (
    COORDINATOR,
    OPERATOR,
    OPERATORS,
    FakeLedger,
    _client,
    enroll_signed,
)
from tests.unit.farm.coordinator.test_scheduler import KEYS, answer, make

GOOD_SHA = sha(GOOD)


@dataclass(frozen=True)
class _Ask:
    sha256: str
    reason: str


def _request(session: Session, ask: _Ask) -> Revocation:
    """What the route does with what ``farm revoke --key`` sends: a revoke transaction
    the operator signed (checked by operator_txs), stored pending."""
    data = make_revoke(OPERATOR, ask.sha256, ask.reason, chain=CHAIN)
    tx, raw = check_relayed(data, RevokeTx, OPERATORS)
    return revocations.request_revocation(session, tx, raw, "alice", NOW)


def _attested(
    engine: Engine, session: Session, tmp_path: Path
) -> tuple[FakeLedger, LedgerPublisher]:
    """A ledger holding three enrolls and one attestation of GOOD."""
    scheduler, _queue, _clock, staging = make(engine, tmp_path)
    for key in KEYS[:3]:
        enroll_signed(session, key)
    ledger = FakeLedger()
    publisher = LedgerPublisher(
        engine,
        _client(ledger, attempts=1),
        COORDINATOR,
        OPERATORS,
        lambda: NOW,
        retry_after=0,
    )
    (build,) = request_build(session, recipe(), NOW)
    scheduler.tick()
    for key in KEYS[:3]:
        answer(session, staging, key, build.id)
    scheduler.tick()
    publisher.tick()
    assert ledger.kinds() == ["enroll"] * 3 + ["attest"]
    return ledger, publisher


def test_a_revocation_is_signed_committed_and_shown_on_the_attestation(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    ledger, publisher = _attested(engine, session, tmp_path)
    body = _Ask(f"sha256:{GOOD_SHA}", "CVE-2026-0001")
    row = _request(session, body)
    assert row.status == "pending" and row.sha256 == GOOD_SHA and row.requested_by == "alice"
    tx = decode_tx(row.tx.encode())
    assert tx.type == "revoke" and tx.artifact == GOOD_SHA and tx.operator == OPERATOR.keyid
    # Not yet committed: the attestation does not show it.
    assert not attestations.list_attestations(session).items[0].revoked
    with pytest.raises(ConflictError, match="pending"):
        _request(session, body)

    publisher.tick()
    assert ledger.kinds()[-1] == "revoke" and ledger.log[-1] == row.tx.encode()
    session.expire_all()
    got = revocations.get_revocation(session, row.id or 0)
    assert got.status == "committed" and got.ledger_index == 4 and got.decided_at == NOW
    assert got.checkpoint is not None and got.tx_id == row.tx_id

    (att,) = attestations.list_attestations(session).items
    assert att.revoked and att.artifacts[0].revoked is not None
    assert att.artifacts[0].revoked.reason == "CVE-2026-0001"
    assert att.artifacts[0].revoked.ledger_index == 4
    assert attestations.list_attestations(session, revoked=True).total == 1
    assert attestations.list_attestations(session, revoked=False).total == 0
    # The API's JSON (bundles spliced in unparsed) is the model's, revocation included.
    for filters in ({}, {"revoked": True}, {"name": att.name, "limit": 1}):
        fast = json.loads(attestations.list_attestations_json(session, **filters))
        model = attestations.list_attestations(session, **filters)
        assert fast == model.model_dump(mode="json") and fast["items"]
    assert revocations.list_revocations(session, sha256=GOOD_SHA).total == 1
    assert revocations.list_revocations(session, sha256="0" * 64).total == 0
    with pytest.raises(ConflictError, match=r"already revoked \(at ledger index 4"):
        _request(session, body)
    publisher.tick()
    assert ledger.kinds().count("revoke") == 1


def test_unknown_digests_are_refused_before_signing(engine: Engine, session: Session) -> None:
    body = _Ask("ab" * 32, "typo")
    with pytest.raises(NotFoundError, match="no committed attestation on this coordinator"):
        _request(session, body)
    assert revocations.list_revocations(session).total == 0


def test_a_refused_revocation_keeps_the_reason_and_may_be_asked_again(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    ledger, publisher = _attested(engine, session, tmp_path)
    ledger.refuse["revoke"] = "operator key is not in the genesis"
    body = _Ask(GOOD_SHA, "bad")
    first = _request(session, body)
    publisher.tick()
    session.expire_all()
    got = revocations.get_revocation(session, first.id or 0)
    assert got.status == "rejected" and got.error == "operator key is not in the genesis"
    assert not attestations.list_attestations(session).items[0].revoked

    ledger.down = True
    del ledger.refuse["revoke"]
    second = _request(session, body)
    publisher.tick()  # down: stays pending, retried later
    session.expire_all()
    assert revocations.get_revocation(session, second.id or 0).status == "pending"
    ledger.down = False
    publisher.tick()
    session.expire_all()
    assert revocations.get_revocation(session, second.id or 0).status == "committed"
    page = revocations.list_revocations(session)
    assert [r.status for r in page.items] == ["committed", "rejected"]  # newest first
    assert revocations.list_revocations(session, status="rejected").total == 1


def test_reads_fail_over_and_map_the_validators_answers() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(f"{request.url.host}{request.url.path}")
        if request.url.host == "v0":
            raise httpx.ConnectError("refused")
        if request.url.host == "v1":
            return httpx.Response(503, json={"error": {"code": "busy", "message": "busy"}})
        if request.url.path == "/v1/checkpoint":
            return httpx.Response(200, json={"size": 3, "note": "farm\n3\nroot\n"})
        if request.url.path == "/v1/status":
            return httpx.Response(200, content=b"not json")
        if request.url.params.get("index") == "9":
            error = {"code": "bad_request", "message": "need 0 <= index < size <= 3"}
            return httpx.Response(400, json={"error": error})
        return httpx.Response(404, json={"error": {"code": "not_found", "message": "no such"}})

    client = LedgerClient(
        ["http://v0", "http://v1", "http://v2"], TRUST4, transport=httpx.MockTransport(handler)
    )
    cp = client.read("/v1/checkpoint", LedgerCheckpointPublic)
    assert cp.size == 3 and calls == ["v0/v1/checkpoint", "v1/v1/checkpoint", "v2/v1/checkpoint"]
    calls.clear()
    client.read("/v1/checkpoint", LedgerCheckpointPublic)
    assert calls == ["v2/v1/checkpoint"]  # starts from the validator that answered last
    with pytest.raises(BadRequestError, match="ledger: need 0 <= index"):
        client.read("/v1/proofs/inclusion", LedgerCheckpointPublic, {"index": 9, "size": 3})
    with pytest.raises(NotFoundError, match="no such"):
        client.read("/v1/entries/5", LedgerCheckpointPublic)
    with pytest.raises(LedgerUnavailableError, match="v2: malformed answer"):
        client.read("/v1/status", LedgerStatusPublic)


def test_no_validator_answering_is_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("slow")

    client = LedgerClient(
        ["http://v0", "http://v1"], TRUST4, transport=httpx.MockTransport(handler)
    )
    with pytest.raises(LedgerUnavailableError, match="v0: ConnectTimeout; http://v1"):
        client.read("/v1/status", LedgerStatusPublic)


def test_revocation_request_shape() -> None:
    # The body is the operator's signed transaction, nothing the coordinator would sign.
    with pytest.raises(ValueError, match="Extra inputs"):
        RevocationCreate.model_validate({"sha256": "ab" * 32, "reason": "r"})
    assert RevocationCreate(tx="{}").tx == "{}"


def test_the_coordinator_relays_only_what_a_genesis_operator_signed_for_its_chain() -> None:
    """Relaying is checked before anything is stored: not a transaction, another kind,
    another chain, a key the genesis does not list are refused with the reason."""
    good = make_revoke(OPERATOR, "ab" * 32, "r", chain=CHAIN)
    tx, raw = check_relayed(good.decode(), RevokeTx, OPERATORS)
    assert raw == good and tx.artifact == "ab" * 32
    with pytest.raises(BadRequestError, match="not an operator transaction"):
        check_relayed(b"{not json", RevokeTx, OPERATORS)
    with pytest.raises(
        BadRequestError, match="a retire transaction was expected, this is a revoke"
    ):
        check_relayed(good, RetireTx, OPERATORS)
    stranger = generate_key()
    with pytest.raises(PermissionDeniedError, match="unknown operator"):
        check_relayed(make_revoke(stranger, "ab" * 32, "r", chain=CHAIN), RevokeTx, OPERATORS)
    with pytest.raises(PermissionDeniedError, match="signed for ledger 'farm-staging'"):
        check_relayed(
            make_revoke(OPERATOR, "ab" * 32, "r", chain="farm-staging"), RevokeTx, OPERATORS
        )
    # A genesis operator's key id over another key's signature: does not verify.
    forged = json.loads(make_revoke(stranger, "ab" * 32, "r", chain=CHAIN))
    forged["operator"] = OPERATOR.keyid
    with pytest.raises(PermissionDeniedError, match="does not verify"):
        check_relayed(canonical_json(forged), RevokeTx, OPERATORS)
