"""A validator that lies cannot make the coordinator record a wrong status (issue 14).

A real four-validator testnet (``farm ledger run`` processes) and the coordinator's
:class:`~farm.coordinator.ledger_client.LedgerPublisher` on a real database. The first
URL of the publisher's list is not a validator but :class:`Liar`, a small HTTP server
in this test standing in for one (it is the adversary, so a fake is right here; it
holds validator v0's real key, as a compromised v0 would). It answers

- forged 200 receipts: a tree of its own co-signed by v0 alone (fewer than 2f+1), the
  same co-signed with keys the genesis does not know, an honest checkpoint with the
  proof of another index, an honest checkpoint with a made-up proof;
- stale 400 refusals ("unknown builder", "already enrolled"), claiming a log as long as
  anyone's.

Every time the coordinator records what the honest validators committed (the
entry at the recorded index is the transaction) or refused, and logs the lie with the
liar's URL.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from api.coordinator.app import create_app
from farm.checkpoint import Checkpoint, cosign_checkpoint
from farm.coordinator import service
from farm.coordinator.auth import sign_request
from farm.coordinator.db import create_tables, make_engine
from farm.coordinator.ledger_client import LedgerClient, LedgerPublisher, LedgerTrust
from farm.coordinator.models import Attestation, Build, Builder, BuilderCreate
from farm.coordinator.operator_txs import OperatorTrust
from farm.coordinator.scheduler import request_build
from farm.coordinator.settings import CoordinatorSettings
from farm.genesis import Genesis, load_genesis
from farm.keys import generate_key, load_key
from farm.merkle import MerkleLog, hash_leaf, inclusion_proof_length
from farm.operator import Operator
from farm.transactions import EnrollTx, decode_tx, tx_id
from tests.integration.conftest import serve
from tests.support.ledger_testnet import LedgerTestnet
from tests.support.postgres import have_postgres, postgres_server
from tests.unit.farm.coordinator._world import NOW, recipe
from tests.unit.farm.coordinator.test_scheduler import KEYS, answer, enroll, make

pytestmark = pytest.mark.timeout(300)

Answer = tuple[int, dict[str, Any]]


class Liar:
    """One 'validator' that answers each ``POST /v1/tx`` with the next lie of ``lies``."""

    def __init__(self, net: LedgerTestnet, honest: str) -> None:
        self.key: Ed25519PrivateKey = load_key(net.root / "v0" / "validator.key").private
        self.chain = net.chain_id
        self.honest = honest
        self.lies: list[Callable[[bytes], Answer]] = []
        self.told: list[str] = []
        self.last_note: dict[str, Any] | None = None
        liar = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                tx = self.rfile.read(int(self.headers["content-length"]))
                lie = liar.lies.pop(0)
                liar.told.append(lie.__name__)
                self._send(*lie(tx))

            def do_GET(self) -> None:
                if self.path == "/v1/status":
                    self._send(200, {"size": 10**6, "height": 10**6})  # "I am ahead"
                elif self.path == "/v1/checkpoint" and liar.last_note is not None:
                    self._send(200, liar.last_note)  # the same under-signed tree again
                else:
                    self._send(404, {"error": {"code": "not_found", "message": "no"}})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)

    # ---- forged 200s --------------------------------------------------------------

    def _own_tree(self, tx: bytes, keys: dict[str, Ed25519PrivateKey]) -> Answer:
        log = MerkleLog([hash_leaf(b"padding"), hash_leaf(tx)])
        note: Checkpoint | str = Checkpoint(self.chain, 2, log.root())
        for name, key in keys.items():
            note = cosign_checkpoint(note, name, key, int(NOW.timestamp()))
        assert isinstance(note, str)
        self.last_note = {"size": 2, "note": note}
        proof = [h.hex() for h in log.inclusion_proof(1, 2)]
        return 200, _receipt(tx, 1, 2, proof, note)

    def too_few_signatures(self, tx: bytes) -> Answer:
        return self._own_tree(tx, {"v0": self.key})

    def keys_not_in_genesis(self, tx: bytes) -> Answer:
        return self._own_tree(tx, {f"v{i}": Ed25519PrivateKey.generate() for i in range(4)})

    def _honest_checkpoint(self) -> tuple[int, str]:
        cp = httpx.get(self.honest + "/v1/checkpoint", timeout=10).json()
        return int(cp["size"]), str(cp["note"])

    def proof_of_another_index(self, tx: bytes) -> Answer:
        size, note = self._honest_checkpoint()
        proof = httpx.get(
            self.honest + "/v1/proofs/inclusion", params={"index": 0, "size": size}, timeout=10
        ).json()["proof"]
        return 200, _receipt(tx, 0, size, proof, note)

    def made_up_proof(self, tx: bytes) -> Answer:
        size, note = self._honest_checkpoint()
        proof = [os.urandom(32).hex() for _ in range(inclusion_proof_length(size - 1, size))]
        return 200, _receipt(tx, size - 1, size, proof, note)

    # ---- stale 400s ---------------------------------------------------------------

    @staticmethod
    def unknown_builder(tx: bytes) -> Answer:
        return 400, _refusal("attestation rests on builder 5e1f0a… which is not enrolled")

    @staticmethod
    def already_enrolled(tx: bytes) -> Answer:
        return 400, _refusal("builder 5e1f0a… is already enrolled")


def _receipt(tx: bytes, index: int, size: int, proof: list[str], note: str) -> dict[str, Any]:
    return {
        "index": index,
        "tx_id": tx_id(tx),
        "height": index + 1,
        "tree_size": size,
        "inclusion_proof": proof,
        "checkpoint": note,
    }


def _refusal(message: str) -> dict[str, Any]:
    return {"error": {"code": "invalid_transaction", "message": message}}


@pytest.fixture
def world(testnet4: LedgerTestnet, tmp_path: Path) -> Iterator[tuple[LedgerTestnet, Liar, Engine]]:
    testnet4.start_all()
    liar = Liar(testnet4, testnet4.url(1))
    engine = make_engine(f"sqlite:///{tmp_path / 'farm.db'}")
    create_tables(engine)
    try:
        yield testnet4, liar, engine
    finally:
        engine.dispose()
        liar.close()


def _publisher(
    net: LedgerTestnet, liar: Liar, engine: Engine, coordinator: Any = None
) -> LedgerPublisher:
    trust = LedgerTrust.from_genesis(load_genesis(net.genesis, Genesis))
    urls = [liar.url, *(net.url(i) for i in range(1, 4))]
    client = LedgerClient(urls, trust, backoff=0.2)
    return LedgerPublisher(
        engine,
        client,
        coordinator or net.coordinator,
        OperatorTrust({net.operator.keyid: net.operator.public}, net.chain_id),
        lambda: NOW,
        retry_after=0,
    )


def _enroll(session: Session, key: Any, net: LedgerTestnet) -> None:
    """Enroll and approve ``key`` with the enroll transaction the operator signs (what
    ``farm operator approve --key`` sends; the publisher relays it)."""
    domain = f"site-{key.keyid[:6]}"
    enroll(session, key, domain=domain)
    shown = service.get_builder(session, key.keyid).model_dump()
    data = Operator(net.operator, net.chain_id).enroll(key.keyid, shown, domain)
    tx = decode_tx(data)
    assert isinstance(tx, EnrollTx)
    service.approve(session, key.keyid, NOW, domain, enroll_tx=tx, enroll_bytes=data)


def _verified_build(session: Session, engine: Engine, tmp_path: Path, builders: list[Any]) -> str:
    scheduler, queue, _clock, staging = make(engine, tmp_path)
    (build,) = request_build(session, recipe(), NOW)
    scheduler.tick()
    asked = {builder for build_id, builder in queue.sent if build_id == build.id}
    # The scheduler picks among every approved builder: answer for the ones it asked.
    for key in [k for k in builders if k.keyid in asked]:
        answer(session, staging, key, build.id)
    scheduler.tick()
    session.expire_all()
    assert session.get(Build, build.id).status == "verified"  # type: ignore[union-attr]
    return build.id


def _entry(net: LedgerTestnet, index: int) -> bytes:
    body = net.get(1, f"/v1/entries/{index}").json()
    return base64.b64decode(body["tx"])


def _lies_logged(caplog: pytest.LogCaptureFixture, liar: Liar) -> list[str]:
    return [r.getMessage() for r in caplog.records if liar.url in r.getMessage()]


def test_forged_receipts_and_stale_refusals_do_not_change_what_is_recorded(
    world: tuple[LedgerTestnet, Liar, Engine],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    net, liar, engine = world
    caplog.set_level(logging.WARNING, logger="farm.coordinator.ledger_client")
    publisher = _publisher(net, liar, engine)
    with Session(engine, expire_on_commit=False) as session:
        for key in KEYS[:3]:
            _enroll(session, key, net)
        first = _verified_build(session, engine, tmp_path / "a", KEYS[:3])

        # (a) four forged 200s: three enrolls and the attestation.
        liar.lies = [
            liar.too_few_signatures,
            liar.keys_not_in_genesis,
            liar.proof_of_another_index,
            liar.made_up_proof,
        ]
        publisher.tick()
        assert liar.lies == [] and len(liar.told) == 4
        session.expire_all()
        for key in KEYS[:3]:
            b = session.get(Builder, key.keyid)
            assert b is not None and b.ledger_error is None and b.ledger_index is not None
            assert json.loads(_entry(net, b.ledger_index))["type"] == "enroll"
            assert b.ledger_tx_id == tx_id(_entry(net, b.ledger_index))
        att = session.exec(select(Attestation).where(Attestation.build_id == first)).one()
        assert att.status == "committed" and att.ledger_index is not None
        assert tx_id(_entry(net, att.ledger_index)) == att.tx_id
        lies = _lies_logged(caplog, liar)
        assert len(lies) == 4, lies
        assert any("checkpoint not trusted" in m for m in lies)
        assert any("not the transaction sent" in m for m in lies)

        # (b) stale 400s: an enroll "already enrolled", an attestation "unknown builder".
        caplog.clear()
        _enroll(session, KEYS[3], net)
        second = _verified_build(session, engine, tmp_path / "b", KEYS[:4])
        liar.lies = [liar.already_enrolled, liar.unknown_builder]
        publisher.tick()
        assert liar.lies == []
        session.expire_all()
        b = session.get(Builder, KEYS[3].keyid)
        assert b is not None and b.ledger_error is None and b.ledger_index is not None
        att = session.exec(select(Attestation).where(Attestation.build_id == second)).one()
        assert att.status == "committed" and att.reason is None
        assert tx_id(_entry(net, att.ledger_index or 0)) == att.tx_id


def test_a_transaction_every_honest_validator_refuses_is_rejected_despite_a_forged_200(
    world: tuple[LedgerTestnet, Liar, Engine],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    net, liar, engine = world
    caplog.set_level(logging.WARNING, logger="farm.coordinator.ledger_client")
    honest = _publisher(net, liar, engine)
    with Session(engine, expire_on_commit=False) as session:
        for key in KEYS[:3]:
            _enroll(session, key, net)
        liar.lies = [liar.too_few_signatures] * 3
        honest.tick()
        build = _verified_build(session, engine, tmp_path, KEYS[:3])
        # An attestation signed by a coordinator key that is not in the genesis: every
        # honest validator refuses it; the liar says it committed.
        liar.lies = [liar.keys_not_in_genesis] * 4
        _publisher(net, liar, engine, coordinator=generate_key()).tick()
        session.expire_all()
        att = session.exec(select(Attestation).where(Attestation.build_id == build)).one()
        assert att.status == "rejected" and att.ledger_index is None
        assert att.reason is not None and "coordinator" in att.reason
        assert _lies_logged(caplog, liar)


# ---- the replay check, shared by coordinator replicas on one PostgreSQL database ---------


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    assert have_postgres(), "initdb/pg_ctl not installed (deploy/setup.sh installs postgresql)"
    with postgres_server() as url:
        engine = make_engine(url)
        create_tables(engine)
        engine.dispose()
        yield url


BODY = b"an output"
PATH = f"/v1/staging/sha256/{hashlib.sha256(BODY).hexdigest()}"


def _approved_builder(url: str) -> Any:
    key = generate_key()
    engine = make_engine(url)
    with Session(engine, expire_on_commit=False) as session:
        token = service.issue_enrollment_token(session, NOW)
        create = BuilderCreate(
            token=token.token,
            public_key=key.public_dict(),
            hostname=f"host-{key.keyid[:6]}",
            arches=["amd64"],
        )
        service.enroll(session, create, NOW)
        service.approve(session, key.keyid, NOW, f"site-{key.keyid[:6]}")
    engine.dispose()
    return key


def _coordinator(url: str, staging: Path) -> Any:
    return serve(create_app(CoordinatorSettings(db_url=url, staging_dir=staging)))


def test_a_request_replayed_to_a_restarted_coordinator_is_refused(
    postgres_url: str, tmp_path: Path
) -> None:
    key = _approved_builder(postgres_url)
    headers = sign_request(key, "PUT", PATH, BODY, time.time())
    with _coordinator(postgres_url, tmp_path) as first:
        assert httpx.put(first + PATH, content=BODY, headers=headers).status_code == 201
    with _coordinator(postgres_url, tmp_path) as restarted:
        again = httpx.put(restarted + PATH, content=BODY, headers=headers)
    assert again.status_code == 401 and "replay" in again.json()["error"]["message"]


def _send(url: str, headers: dict[str, str], start: threading.Barrier, codes: list[int]) -> None:
    start.wait()
    codes.append(httpx.put(url + PATH, content=BODY, headers=headers, timeout=30).status_code)


def test_two_replicas_racing_on_one_nonce_accept_it_once(postgres_url: str, tmp_path: Path) -> None:
    key = _approved_builder(postgres_url)
    with (
        _coordinator(postgres_url, tmp_path / "a") as a,
        _coordinator(postgres_url, tmp_path / "b") as b,
    ):
        for _ in range(5):
            headers = sign_request(key, "PUT", PATH, BODY, time.time())
            start = threading.Barrier(2)
            codes: list[int] = []

            threads = [
                threading.Thread(target=_send, args=(u, headers, start, codes)) for u in (a, b)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert sorted(codes) == [201, 401], codes
