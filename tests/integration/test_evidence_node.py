"""A real validator process stores and serves the equivocations it sees, across a crash.

One ``farm ledger run`` process (v0) of a four-validator testnet; the test connects to
it over the real p2p transport as v1 (with v1's genesis key, so the handshake
authenticates it) and sends conflicting votes signed with v1's key, plus a conflicting
pair of v2's that v1 relays. v0 must serve each slot's evidence once on
``GET /v1/evidence``, verifiable against the genesis keys alone, and still serve it
after being killed with SIGKILL and started again on the same directory.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from farm.keys import load_key
from ledger.block import VoteKind
from ledger.genesis import load_genesis
from ledger.messages import Vote, sign_vote
from ledger.network import encode_frame
from ledger.verify import verify_equivocation
from tests.support.ledger_testnet import START_TIMEOUT, LedgerTestnet, speak_as, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


@pytest.fixture
def net(testnet4: LedgerTestnet) -> LedgerTestnet:
    return testnet4


def _value(tag: str) -> bytes:
    return hashlib.sha256(tag.encode()).digest()


def _vote(key: Ed25519PrivateKey, name: str, kind: VoteKind, block_hash: bytes | None) -> Vote:
    return sign_vote(key, kind=kind, height=1, round=0, block_hash=block_hash, validator=name)


def _frame(vote: Vote) -> bytes:
    return encode_frame({"t": "c", "m": vote.to_json()})


async def _equivocate_as_v1(net: LedgerTestnet) -> None:
    """Connect to v0 as v1 and send v1's (and, relayed, v2's) conflicting votes."""
    v1 = load_key(net.root / "v1" / "validator.key").private
    v2 = load_key(net.root / "v2" / "validator.key").private
    async with speak_as(net, "v1") as byzantine:
        deadline = time.monotonic() + START_TIMEOUT
        pv, pc = VoteKind.PREVOTE, VoteKind.PRECOMMIT
        frames = [
            _vote(v1, "v1", pv, _value("a")),
            _vote(v1, "v1", pv, _value("b")),  # evidence: prevote a and b
            _vote(v1, "v1", pv, _value("a")),  # the same vote again
            _vote(v1, "v1", pv, _value("c")),  # a third value: the slot is proven already
            _vote(v1, "v1", pc, _value("a")),
            _vote(v1, "v1", pc, None),  # evidence: precommit a and nil
            _vote(v2, "v2", pv, _value("x")),  # v2's own equivocation, relayed by v1
            _vote(v2, "v2", pv, _value("y")),
            _vote(v1, "v3", pv, _value("a")),  # forged as v3 (v1's signature): dropped
            _vote(v1, "v3", pv, _value("b")),
        ]
        for vote in frames:
            byzantine.send("v0", _frame(vote))
        async with httpx.AsyncClient(base_url=net.url(0), timeout=5.0) as client:
            while True:
                r = await client.get("/v1/evidence")
                if r.status_code == 200 and len(r.json()["evidence"]) >= 3:
                    break
                assert time.monotonic() < deadline, f"no evidence served: {r.text}"
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)  # let anything that would wrongly add a record land


def _served(net: LedgerTestnet, **params: Any) -> dict[str, Any]:
    r = net.get(0, "/v1/evidence", **params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_equivocations_are_served_verifiable_and_survive_a_crash(net: LedgerTestnet) -> None:
    genesis = load_genesis(net.genesis)
    keys = {v.name: bytes.fromhex(v.public_key) for v in genesis.validators}
    net.start(0)
    fresh = net.status(0)
    assert fresh is not None and fresh["evidence"] == 0

    asyncio.run(_equivocate_as_v1(net))

    records = _served(net)["evidence"]
    slots = [(r["validator"], r["height"], r["round"], r["kind"]) for r in records]
    assert sorted(slots) == [
        ("v1", 1, 0, "precommit"),
        ("v1", 1, 0, "prevote"),
        ("v2", 1, 0, "prevote"),
    ]
    for r in records:
        ev = verify_equivocation(r, keys)  # needs nothing but the genesis keys
        assert ev.validator == r["validator"]
        assert isinstance(r["seen_at"], int) and abs(r["seen_at"] - time.time()) < 600
    by_slot = {(r["validator"], r["kind"]): r for r in records}
    prevotes = by_slot[("v1", "prevote")]
    assert {prevotes["first"]["block_hash"], prevotes["second"]["block_hash"]} == {
        _value("a").hex(),
        _value("b").hex(),
    }
    assert by_slot[("v1", "precommit")]["second"]["block_hash"] is None
    status = net.status(0)
    assert status is not None and status["evidence"] == 3

    # filtering and paging
    assert [r["kind"] for r in _served(net, validator="v1")["evidence"]] == [
        r["kind"] for r in records if r["validator"] == "v1"
    ]
    assert _served(net, validator="v3") == {"evidence": [], "next": None}
    page = _served(net, limit=1)
    assert page["evidence"] == records[:1] and page["next"] == records[0]["id"] + 1
    page2 = _served(net, start=page["next"], limit=2)
    assert page2["evidence"] == records[1:3] and page2["next"] == records[2]["id"] + 1
    assert _served(net, start=page2["next"]) == {"evidence": [], "next": None}
    unknown = net.get(0, "/v1/evidence", validator="mallory")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "not_found"
    assert "mallory" in unknown.json()["error"]["message"]
    bad = net.get(0, "/v1/evidence", limit="many")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_request"

    # a crash (SIGKILL) and a restart on the same directory lose nothing
    net.kill(0)
    net.start(0)
    assert _served(net)["evidence"] == records
    again = wait_for("v0's status", lambda: net.status(0))
    assert again["evidence"] == 3
