"""Validators sign one checkpoint text per size, revoked-set line included, and a peer
cannot slip another text's signature into the note they serve.

Three validators of a four-validator testnet run as real processes (enough to commit);
the test speaks for the fourth, v3, over the real p2p transport with v3's genesis key.
A co-signature of the same size and root but another text (an extra extension line, or
no revoked-set line) is valid over *its* text; merged into the validators' note it
would sit there as a signature that does not verify over the note. It must be left
out, while v3's co-signature of the honest text is merged.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from farm.checkpoint import (
    Checkpoint,
    cosign_checkpoint,
    cosignatures,
    parse_note,
    verify_checkpoint,
)
from farm.keys import generate_key, load_key
from farm.transactions import make_enroll
from ledger.genesis import load_genesis
from ledger.network import encode_frame
from ledger.revoked_set import commitment_of
from tests.support.ledger_testnet import LedgerTestnet, speak_as, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


@pytest.fixture
def net(testnet4: LedgerTestnet) -> LedgerTestnet:
    return testnet4


def _note(net: LedgerTestnet) -> str:
    r = net.get(0, "/v1/checkpoint")
    assert r.status_code == 200, r.text
    note: str = r.json()["note"]
    return note


async def _cosign_as_v3(net: LedgerTestnet, notes: list[str]) -> None:
    async with speak_as(net, "v3") as me:
        for note in notes:
            me.send("v0", encode_frame({"t": "cosig", "note": note}))
        await asyncio.sleep(1.5)


def test_only_the_validators_own_checkpoint_text_is_merged(net: LedgerTestnet) -> None:
    genesis = load_genesis(net.genesis)
    keys = {v.name: v.ed25519_key() for v in genesis.validators}
    for i in range(3):
        net.start(i)
    r = net.submit(0, make_enroll(net.operator, generate_key().public_dict(), ["x86_64"], "h",
                                  domain="h", chain=net.chain_id))  # fmt: skip
    assert r.status_code == 200, r.text
    size = r.json()["tree_size"]
    wait_for("a checkpoint of the enroll", lambda: net.checkpoint(0) is not None)
    honest = Checkpoint.from_body(parse_note(_note(net)).text)
    assert honest.size == size
    assert commitment_of(honest) == (0, bytes.fromhex(
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"))  # fmt: skip

    v3 = load_key(net.root / "v3" / "validator.key").private
    stamp = int(time.time())
    poisoned = Checkpoint(honest.origin, size, honest.root_hash, (*honest.extensions, "x"))
    bare = Checkpoint(honest.origin, size, honest.root_hash)
    asyncio.run(
        _cosign_as_v3(net, [cosign_checkpoint(cp, "v3", v3, stamp) for cp in (poisoned, bare)])
    )
    note = _note(net)
    parsed = parse_note(note)
    assert parsed.text == honest.body()
    # Every signature line in the note verifies over it; v3's are not among them.
    assert len(cosignatures(parsed, keys)) == len(parsed.signatures) == 3
    assert "v3" not in cosignatures(parsed, keys)

    asyncio.run(_cosign_as_v3(net, [cosign_checkpoint(honest, "v3", v3, stamp + 1)]))
    parsed = parse_note(_note(net))
    assert sorted(cosignatures(parsed, keys)) == ["v0", "v1", "v2", "v3"]
    assert len(parsed.signatures) == 4
    verify_checkpoint(_note(net), keys, 3, genesis.chain_id)
