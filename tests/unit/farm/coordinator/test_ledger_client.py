"""The coordinator's ledger client and publisher, against a fake validator over HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from farm.coordinator import attestations
from farm.coordinator.ledger_client import LedgerClient, LedgerPublisher
from farm.coordinator.models import Attestation, Builder
from farm.coordinator.scheduler import request_build
from farm.errors import LedgerError, TransactionError
from farm.keys import generate_key
from farm.transactions import decode_tx, tx_id
from tests.unit.farm.coordinator._world import BAD, GOOD, NOW, recipe, sha
from tests.unit.farm.coordinator.test_scheduler import KEYS, answer, enroll, make

OPERATOR = generate_key()
GOOD_SHA = sha(GOOD)
COORDINATOR = generate_key()
CHAIN = "farm-testnet"  # what FakeLedger signs its checkpoints as


class FakeLedger:
    """One validator: commits every well-formed transaction unless told to refuse."""

    def __init__(self) -> None:
        self.log: list[bytes] = []
        self.refuse: dict[str, str] = {}  # tx type → reason
        self.down = False

    def handler(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            return httpx.Response(503, json={"error": {"code": "unavailable", "message": "busy"}})
        tx = request.content
        kind = decode_tx(tx).type
        if kind in self.refuse:
            error = {"code": "invalid_transaction", "message": self.refuse[kind]}
            return httpx.Response(400, json={"error": error})
        self.log.append(tx)
        index = len(self.log) - 1
        receipt = {
            "index": index,
            "tx_id": tx_id(tx),
            "height": index + 1,
            "tree_size": len(self.log),
            "inclusion_proof": ["00" * 32] * (index > 0),
            "checkpoint": f"farm-testnet\n{len(self.log)}\nroot\n\n— v0 sig\n",
        }
        return httpx.Response(200, json=receipt)

    def kinds(self) -> list[str]:
        return [json.loads(tx)["type"] for tx in self.log]


def _client(ledger: FakeLedger, attempts: int = 4) -> LedgerClient:
    return LedgerClient(
        ["http://v0"],
        transport=httpx.MockTransport(ledger.handler),
        sleep=lambda _: None,
        attempts=attempts,
    )


def _receipt(request: httpx.Request) -> httpx.Response:
    body = {
        "index": 7,
        "tx_id": tx_id(request.content),
        "height": 3,
        "tree_size": 8,
        "inclusion_proof": [],
        "checkpoint": None,
    }
    return httpx.Response(200, json=body)


def test_client_fails_over_retries_and_reports_refusals() -> None:
    calls: list[str] = []
    delays: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.host)
        if request.url.host == "v0":
            raise httpx.ConnectError("refused")
        if len(calls) < 4:
            return httpx.Response(504, json={"error": {"code": "timeout", "message": "slow"}})
        return _receipt(request)

    client = LedgerClient(
        ["http://v0", "http://v1"],
        transport=httpx.MockTransport(handler),
        sleep=delays.append,
        backoff=0.5,
    )
    tx = b'{"type":"anything"}'
    receipt = client.submit(tx)
    assert receipt.index == 7 and receipt.tx_id == tx_id(tx)
    assert calls == ["v0", "v1", "v0", "v1"] and delays == [0.5]

    def refusing(request: httpx.Request) -> httpx.Response:
        error = {"code": "invalid_transaction", "message": "builder not enrolled"}
        return httpx.Response(400, json={"error": error})

    client = LedgerClient(["http://v0"], transport=httpx.MockTransport(refusing))
    with pytest.raises(TransactionError, match="builder not enrolled"):
        client.submit(tx)

    down = FakeLedger()
    down.down = True
    with pytest.raises(LedgerError, match="not committed"):
        _client(down, attempts=3).submit(tx)


def test_publisher_enrolls_then_attests_verified_builds_only(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    scheduler, _queue, _clock, staging = make(engine, tmp_path)
    for key in KEYS[:3]:
        enroll(session, key)
    ledger = FakeLedger()
    ledger.down = True
    publisher = LedgerPublisher(
        engine,
        _client(ledger, attempts=1),
        COORDINATOR,
        OPERATOR,
        lambda: NOW,
        CHAIN,
        retry_after=0,
    )
    publisher.tick()  # the ledger is down: nothing stored, retried later
    session.expire_all()
    assert all(b.ledger_index is None for b in session.exec(select(Builder)))
    ledger.down = False
    publisher.tick()
    assert ledger.kinds() == ["enroll"] * 3
    session.expire_all()
    assert sorted(b.ledger_index or 0 for b in session.exec(select(Builder))) == [0, 1, 2]

    (good,) = request_build(session, recipe(), NOW)
    scheduler.tick()
    for key in KEYS[:3]:
        answer(session, staging, key, good.id)
    scheduler.tick()
    (bad,) = request_build(session, recipe(), NOW)
    scheduler.tick()
    for i, key in enumerate(KEYS[:3]):
        answer(session, staging, key, bad.id, BAD if i == 0 else GOOD)
    scheduler.tick()

    publisher.tick()
    publisher.tick()  # a second pass submits nothing more
    assert ledger.kinds() == ["enroll"] * 3 + ["attest"]
    page = attestations.list_attestations(session, name="demo")
    assert page.total == 1
    (att,) = page.items
    assert att.build_id == good.id and att.ledger_index == 3 and att.tx_id == tx_id(ledger.log[3])
    assert att.checkpoint is not None and att.artifacts[0].sha256 == GOOD_SHA
    assert attestations.list_attestations(session, sha256=GOOD_SHA).total == 1
    assert attestations.get_attestation(session, att.tx_id).bundle == att.bundle
    assert session.get(Attestation, att.tx_id) is not None


def test_a_refused_attestation_is_stored_with_the_ledgers_reason(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    scheduler, _queue, _clock, staging = make(engine, tmp_path)
    for key in KEYS[:3]:
        enroll(session, key)
    ledger = FakeLedger()
    ledger.refuse["attest"] = "coordinator key is not in the genesis"
    publisher = LedgerPublisher(engine, _client(ledger), COORDINATOR, OPERATOR, lambda: NOW, CHAIN)
    (build,) = request_build(session, recipe(), NOW)
    scheduler.tick()
    for key in KEYS[:3]:
        answer(session, staging, key, build.id)
    scheduler.tick()
    publisher.tick()
    publisher.tick()
    assert ledger.kinds() == ["enroll"] * 3
    assert attestations.list_attestations(session).total == 0
    rejected = attestations.list_attestations(session, status="rejected")
    assert rejected.total == 1
    assert rejected.items[0].reason == "coordinator key is not in the genesis"
