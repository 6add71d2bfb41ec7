"""The coordinator's ledger client and publisher, against a fake validator over HTTP."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from farm.coordinator import attestations, service
from farm.coordinator.ledger_client import LedgerClient, LedgerPublisher
from farm.coordinator.models import Attestation, Builder
from farm.coordinator.operator_txs import OperatorTrust
from farm.coordinator.scheduler import request_build
from farm.errors import LedgerError, TransactionError
from farm.keys import KeyPair, generate_key
from farm.operator import Operator
from farm.transactions import EnrollTx, decode_tx, tx_id
from tests.unit.farm.coordinator._ledger import CHAIN, TRUST1, TRUST4, SignedLog
from tests.unit.farm.coordinator._world import BAD, GOOD, NOW, recipe, sha
from tests.unit.farm.coordinator.test_scheduler import KEYS, answer, enroll, make

OPERATOR = generate_key()
GOOD_SHA = sha(GOOD)
COORDINATOR = generate_key()
OPERATORS = OperatorTrust({OPERATOR.keyid: OPERATOR.public}, CHAIN)


def enroll_signed(session: Session, key: KeyPair, domain: str | None = None) -> None:
    """Enroll and approve ``key`` as the scheduler tests do, with the enroll transaction
    the operator signs (``farm operator approve``) for the publisher to relay."""
    domain = domain or f"site-{key.keyid[:6]}"
    enroll(session, key, domain=domain)
    shown = service.get_builder(session, key.keyid).model_dump()
    data = Operator(OPERATOR, CHAIN).enroll(key.keyid, shown, domain)
    tx = decode_tx(data)
    assert isinstance(tx, EnrollTx)
    service.approve(session, key.keyid, NOW, domain, enroll_tx=tx, enroll_bytes=data)


class FakeLedger:
    """One validator (of a one-validator genesis): commits every well-formed transaction
    unless told to refuse, and answers with real proofs under its real co-signature."""

    def __init__(self) -> None:
        self.signed = SignedLog()
        self.refuse: dict[str, str] = {}  # tx type → reason
        self.down = False

    @property
    def log(self) -> list[bytes]:
        return self.signed.entries

    def handler(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            return httpx.Response(503, json={"error": {"code": "unavailable", "message": "busy"}})
        if request.method == "GET" and request.url.path == "/v1/status":
            return httpx.Response(200, json={"size": len(self.log)})
        tx = request.content
        kind = decode_tx(tx).type
        if kind in self.refuse:
            error = {"code": "invalid_transaction", "message": self.refuse[kind]}
            return httpx.Response(400, json={"error": error})
        index = self.signed.append(tx)
        return httpx.Response(200, json=self.signed.receipt(index, signers=["v0"]))

    def kinds(self) -> list[str]:
        return [json.loads(tx)["type"] for tx in self.log]


def _client(ledger: FakeLedger, attempts: int = 4) -> LedgerClient:
    return LedgerClient(
        ["http://v0"],
        TRUST1,
        transport=httpx.MockTransport(ledger.handler),
        sleep=lambda _: None,
        attempts=attempts,
    )


def test_client_fails_over_retries_and_reports_refusals() -> None:
    calls: list[str] = []
    delays: list[float] = []
    tx = b'{"type":"anything"}'
    signed = SignedLog()
    for i in range(7):
        signed.append(b"entry %d" % i)
    signed.append(tx)

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.host)
        if request.url.host == "v0":
            raise httpx.ConnectError("refused")
        if len(calls) < 4:
            return httpx.Response(504, json={"error": {"code": "timeout", "message": "slow"}})
        return httpx.Response(200, json=signed.receipt(7))

    client = LedgerClient(
        ["http://v0", "http://v1"],
        TRUST4,
        transport=httpx.MockTransport(handler),
        sleep=delays.append,
        backoff=0.5,
    )
    receipt = client.submit(tx)
    assert receipt.index == 7 and receipt.tx_id == tx_id(tx) and receipt.tree_size == 8
    assert calls == ["v0", "v1", "v0", "v1"] and delays == [0.5]

    def refusing(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/status":
            return httpx.Response(200, json={"size": 8})
        error = {"code": "invalid_transaction", "message": "builder not enrolled"}
        return httpx.Response(400, json={"error": error})

    client = LedgerClient(["http://v0"], TRUST1, transport=httpx.MockTransport(refusing))
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
        enroll_signed(session, key)
    ledger = FakeLedger()
    ledger.down = True
    publisher = LedgerPublisher(
        engine,
        _client(ledger, attempts=1),
        COORDINATOR,
        OPERATORS,
        lambda: NOW,
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
        enroll_signed(session, key)
    ledger = FakeLedger()
    ledger.refuse["attest"] = "coordinator key is not in the genesis"
    publisher = LedgerPublisher(engine, _client(ledger), COORDINATOR, OPERATORS, lambda: NOW)
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


def test_client_skips_a_forged_receipt_and_completes_an_under_signed_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tx = b'{"type":"anything"}'
    signed = SignedLog()
    signed.append(b"first")
    index = signed.append(tx)
    under_signed = signed.receipt(index, signers=["v0", "v1"])  # 2 < 2f+1
    signed.append(b"later")  # the co-signed checkpoint the validator has now is larger
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(f"{request.url.host} {request.method} {request.url.path}")
        if request.url.host == "liar":
            forged = dict(under_signed, checkpoint=signed.note(2), index=0)
            return httpx.Response(200, json=forged)
        if request.url.path == "/v1/tx":
            return httpx.Response(200, json=under_signed)
        if request.url.path == "/v1/checkpoint":
            return httpx.Response(200, json={"size": 3, "note": signed.note(3)})
        assert request.url.params["index"] == str(index) and request.url.params["size"] == "3"
        proof = [h.hex() for h in signed.log.inclusion_proof(index, 3)]
        return httpx.Response(200, json={"proof": proof})

    client = LedgerClient(
        ["http://liar", "http://v1"], TRUST4, transport=httpx.MockTransport(handler)
    )
    with caplog.at_level("WARNING", logger="farm.coordinator.ledger_client"):
        receipt = client.submit(tx)
    assert (receipt.index, receipt.tree_size) == (index, 3)
    assert receipt.checkpoint == signed.note(3)
    assert calls == [
        "liar POST /v1/tx",
        "v1 POST /v1/tx",
        "v1 GET /v1/checkpoint",
        "v1 GET /v1/proofs/inclusion",
    ]
    (lie,) = [r.getMessage() for r in caplog.records]
    assert "http://liar" in lie and "not the transaction sent" in lie


def test_a_refusal_is_final_only_from_f_plus_1_validators_at_the_dependency() -> None:
    tx = b'{"type":"anything"}'
    sizes = {"v0": 9, "v1": 3, "v2": 9, "v3": 9}
    refusing = {"v0", "v1"}

    def handler(request: httpx.Request) -> httpx.Response:
        host = request.url.host
        if request.url.path == "/v1/status":
            return httpx.Response(200, json={"size": sizes[host]})
        if host in refusing:
            error = {"code": "invalid_transaction", "message": "unknown builder b1"}
            return httpx.Response(400, json={"error": error})
        return httpx.Response(504, json={"error": {"code": "timeout", "message": "slow"}})

    def client() -> LedgerClient:
        urls = [f"http://v{i}" for i in range(4)]
        return LedgerClient(
            urls, TRUST4, transport=httpx.MockTransport(handler), sleep=lambda _: None
        )

    # v1 is behind the enrollments the attestation needs: one refusal counts, not final.
    with pytest.raises(LedgerError, match="not yet final") as caught:
        client().submit(tx, after=5)
    assert not isinstance(caught.value, TransactionError)
    refusing.add("v2")  # a second validator at the dependency gives the same reason
    with pytest.raises(TransactionError, match="unknown builder b1"):
        client().submit(tx, after=5)


def test_the_attestation_carries_the_verdicts_cross_architecture_record(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    """What the coordinator compared across architectures (the verdict's ``cross_arch``)
    is signed into the attestation as ``internalParameters.crossArch`` (ADR 42)."""
    scheduler, _queue, _clock, staging = make(engine, tmp_path)
    for key in KEYS[:3]:
        enroll_signed(session, key)
    ledger = FakeLedger()
    publisher = LedgerPublisher(
        engine, _client(ledger, attempts=1), COORDINATOR, OPERATORS, lambda: NOW, retry_after=0
    )
    publisher.tick()
    (build,) = request_build(session, recipe(), NOW)
    scheduler.tick()
    for key in KEYS[:3]:
        answer(session, staging, key, build.id)
    scheduler.tick()
    session.expire_all()
    decided = service.get_build(session, build.id)
    assert decided.status == "verified" and decided.verdict is not None
    # As the coordinator records it once another architecture's build has verified.
    cross = {"verdict": "agreed", "arches": ["amd64", "arm64"], "outputs": {}, "builds": {}}
    decided.verdict = {**decided.verdict, "cross_arch": cross}
    session.add(decided)
    session.commit()
    publisher.tick()
    (att,) = attestations.list_attestations(session, name="demo").items
    statement = json.loads(base64.b64decode(att.bundle["envelope"]["payload"]))
    internal = statement["predicate"]["buildDefinition"]["internalParameters"]
    assert internal["crossArch"] == cross
