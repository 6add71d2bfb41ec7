"""The follower's checks are the validators' own: nothing a validator serves is assumed."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from api.distribution.errors import FollowError
from api.distribution.follower import Follower, check_block, check_checkpoint
from farm.checkpoint import Checkpoint, cosign_checkpoint, merge_signatures, sign_checkpoint
from farm.transactions import make_revoke
from ledger.block import (
    Block,
    CommitCertificate,
    CommitSig,
    VoteKind,
    vote_sign_bytes,
)
from ledger.genesis import Genesis, ValidatorInfo
from ledger.revoked_set import RevokedSet
from ledger.state import LedgerState
from ledger.storage import LedgerStore
from tests.support.attest_world import World
from tests.support.ledger_fixtures import CHAIN, attests, enroll_all

KEYS = [
    Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"dist/{i}".encode()).digest())
    for i in range(4)
]


def _genesis(world: World) -> Genesis:
    return Genesis(
        chain_id=CHAIN,  # the fixtures' operator transactions are signed for it
        genesis_time="2026-01-01T00:00:00Z",
        validators=tuple(
            ValidatorInfo(
                name=f"v{i}",
                public_key=k.public_key().public_bytes_raw().hex(),
                p2p=f"127.0.0.1:{7000 + i}",
                http=f"127.0.0.1:{8000 + i}",
            )
            for i, k in enumerate(KEYS)
        ),
        operators=(world.operator.public_dict(),),
        coordinators=(world.coordinator.public_dict(),),
        quorum=3,
    )


def _block(state: LedgerState, height: int, prev: bytes, txs: list[bytes]) -> Block:
    root, size = state.root_after(txs)
    return Block(height, prev, tuple(txs), root, size, "v0")


def _cert(block: Block, signers: range = range(3)) -> CommitCertificate:
    sigs = tuple(
        CommitSig(
            f"v{i}",
            KEYS[i].sign(
                vote_sign_bytes(VoteKind.PRECOMMIT, block.height, 0, block.hash(), f"v{i}")
            ),
        )
        for i in signers
    )
    return CommitCertificate(block.height, 0, block.hash(), sigs)


@pytest.fixture(scope="module")
def world() -> World:
    return World()


def _check(g: Genesis, state: LedgerState, block: Block, cert: CommitCertificate) -> None:
    check_block(
        block,
        cert,
        height=0,
        prev_hash=bytes.fromhex(g.hash),
        validators=g.validator_set(),
        state=state,
    )


def test_a_certified_block_that_follows_is_accepted(world: World) -> None:
    g = _genesis(world)
    state = LedgerState.from_genesis(g)
    block = _block(state, 1, bytes.fromhex(g.hash), enroll_all(world))
    _check(g, state, block, _cert(block))


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("two signatures", "2/4 precommits, need 3"),
        ("signature of another block", "certificate is for block"),
        ("unknown signer", "unknown validator"),
        ("other previous block", "names previous block"),
        ("wrong height", "got block 2, wanted 1"),
        ("invalid transaction", "is invalid"),
        ("wrong root", "log root"),
        ("not a validator's proposal", "is not a validator"),
    ],
)
def test_anything_else_is_refused(world: World, case: str, message: str) -> None:
    g = _genesis(world)
    state = LedgerState.from_genesis(g)
    prev = bytes.fromhex(g.hash)
    block = _block(state, 1, prev, enroll_all(world))
    cert = _cert(block)
    if case == "two signatures":
        cert = _cert(block, range(2))
    elif case == "signature of another block":
        other = _block(state, 1, prev, enroll_all(world)[:1])
        cert = CommitCertificate(1, 0, block.hash(), _cert(other).signatures)
        cert = CommitCertificate(1, 0, other.hash(), cert.signatures)
    elif case == "unknown signer":
        cert = CommitCertificate(1, 0, block.hash(), (*cert.signatures, CommitSig("v9", b"x")))
    elif case == "other previous block":
        block = _block(state, 1, b"\x01" * 32, enroll_all(world))
        cert = _cert(block)
    elif case == "wrong height":
        block = _block(state, 2, prev, enroll_all(world))
        cert = _cert(block)
    elif case == "invalid transaction":
        block = _block(state, 1, prev, attests(world, 1))  # its builders are not enrolled
        cert = _cert(block)
    elif case == "wrong root":
        good = block
        block = Block(1, prev, good.txs, b"\x02" * 32, good.log_size, "v0")
        cert = _cert(block)
    elif case == "not a validator's proposal":
        good = block
        block = Block(1, prev, good.txs, good.log_root, good.log_size, "mallory")
        cert = _cert(block)
    with pytest.raises(FollowError, match=message):
        _check(g, state, block, cert)


def test_checkpoints_need_2f_plus_1_genesis_signatures_and_our_root(world: World) -> None:
    g = _genesis(world)
    state = LedgerState.from_genesis(g)
    state.apply_block(enroll_all(world))
    revoked = (state.revoked_set().extension(),)
    cp = Checkpoint(g.chain_id, state.size, state.root, revoked)

    def note(signers: range, checkpoint: Checkpoint = cp) -> str:
        return merge_signatures(*(sign_checkpoint(checkpoint, f"v{i}", KEYS[i]) for i in signers))

    assert check_checkpoint(note(range(3)), g, state).size == state.size
    with pytest.raises(FollowError, match="need 3"):
        check_checkpoint(note(range(2)), g, state)
    forged = Checkpoint(g.chain_id, state.size, b"\x03" * 32, revoked)
    with pytest.raises(FollowError, match="does not match our log"):
        check_checkpoint(note(range(4), forged), g, state)
    ahead = Checkpoint(g.chain_id, state.size + 1, state.root, revoked)
    with pytest.raises(FollowError, match="ahead of our log"):
        check_checkpoint(note(range(3), ahead), g, state)
    other_chain = Checkpoint("another-chain", state.size, state.root, revoked)
    with pytest.raises(FollowError, match="origin"):
        check_checkpoint(note(range(3), other_chain), g, state)


def test_checkpoints_must_commit_to_our_revoked_set(world: World) -> None:
    """2f+1 signatures and our root are not enough: a checkpoint whose revoked-set line
    is missing, doubled or not our state's at its size is refused (the node could not
    prove absences against it)."""
    g = _genesis(world)
    state = LedgerState.from_genesis(g)
    state.apply_block(enroll_all(world))
    state.apply_block(attests(world, 3))
    before = state.size
    state.apply_block(
        [make_revoke(world.operator, f"{i:064x}", f"CVE-{i}", chain=CHAIN) for i in (0, 2)]
    )
    assert len(state.revoked_set()) == 2 and len(state.revoked_set(before)) == 0

    def note(size: int, *extensions: str) -> str:
        cp = Checkpoint(g.chain_id, size, state.log.root(size), extensions)
        return merge_signatures(*(sign_checkpoint(cp, f"v{i}", KEYS[i]) for i in range(3)))

    now, then = state.revoked_set().extension(), state.revoked_set(before).extension()
    assert check_checkpoint(note(state.size, now), g, state).size == state.size
    assert check_checkpoint(note(before, then), g, state).size == before
    # One revocation in: the set at size - 1 has one member.
    one = state.revoked_set(state.size - 1)
    assert len(one) == 1 and f"{0:064x}" in one
    assert check_checkpoint(note(state.size - 1, one.extension()), g, state)
    cases = {
        "hides a revocation": (state.size, RevokedSet([f"{0:064x}"]).extension()),
        "the set of another size": (state.size, then),
        "a revocation not yet committed": (before, now),
        "another member": (state.size, RevokedSet([f"{0:064x}", "ab" * 32]).extension()),
    }
    for case, (size, line) in cases.items():
        with pytest.raises(FollowError, match=r"revoked artifact.*our log has") as info:
            check_checkpoint(note(size, line), g, state)
        assert f"checkpoint at size {size}" in str(info.value), case
    with pytest.raises(FollowError, match="no farm-revoked/v1 lines"):
        check_checkpoint(note(state.size), g, state)
    with pytest.raises(FollowError, match="has 2 farm-revoked/v1 lines"):
        check_checkpoint(note(state.size, now, now), g, state)
    with pytest.raises(FollowError, match="malformed revoked-set line"):
        check_checkpoint(note(state.size, now.replace(" 2 ", " 02 ")), g, state)
    # Other extension lines are allowed beside it.
    assert check_checkpoint(note(state.size, "example.org/other 1", now), g, state)


def test_poll_follows_the_honest_validator_and_keeps_the_freshest_checkpoint(
    world: World, tmp_path: Path
) -> None:
    """Two validators over httpx's transport interface: one serves garbage, the other
    the chain; blocks are stored, and a newer co-signing of the same tree replaces the
    kept checkpoint."""
    g = _genesis(world)
    chain_state = LedgerState.from_genesis(g)
    b1 = _block(chain_state, 1, bytes.fromhex(g.hash), enroll_all(world))
    chain_state.apply_block(b1.txs)
    b2 = _block(chain_state, 2, b1.hash(), attests(world, 2))
    chain_state.apply_block(b2.txs)
    blocks = [{"block": b.to_json(), "certificate": _cert(b).to_json()} for b in (b1, b2)]
    cp = Checkpoint(
        g.chain_id, chain_state.size, chain_state.root, (chain_state.revoked_set().extension(),)
    )
    stamp = {"t": 1_000}

    def note() -> str:
        return merge_signatures(
            *(cosign_checkpoint(cp, f"v{i}", KEYS[i], stamp["t"]) for i in range(3))
        )

    def honest(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/blocks":
            start = int(request.url.params["start"])
            return httpx.Response(200, json={"blocks": blocks[start - 1 :]})
        return httpx.Response(200, json={"size": cp.size, "note": note()})

    def liar(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/blocks":
            forged = dict(blocks[0], block={**blocks[0]["block"], "log_size": 99})
            return httpx.Response(200, json={"blocks": [forged]})
        return httpx.Response(500)

    def route(request: httpx.Request) -> httpx.Response:
        return (liar if request.url.host == "liar" else honest)(request)

    store = LedgerStore(tmp_path / "ledger.sqlite", g)
    state = store.load_state(g)
    seen: list[int] = []
    follower = Follower(
        g,
        ["http://liar", "http://honest"],
        store,
        state,
        threading.RLock(),
        on_block=lambda block, first: seen.append(block.height),
        on_checkpoint=lambda n, c: None,
    )
    with httpx.Client(transport=httpx.MockTransport(route)) as client:
        assert follower.poll(client) == 2
        assert seen == [1, 2] and store.height() == 2 and state.root == chain_state.root
        assert "certificate is for block" in follower.refused["http://liar"]
        first = store.latest_checkpoint()
        assert first is not None and follower.checkpoint_size == cp.size
        stamp["t"] = 2_000
        assert follower.poll(client) == 0
        assert store.latest_checkpoint() != first and follower.checkpoint_time == 2_000
    store.close()
    # A restart resumes from the store, with the fresher checkpoint.
    again = LedgerStore(tmp_path / "ledger.sqlite", g)
    resumed = Follower(
        g,
        ["http://honest"],
        again,
        again.load_state(g),
        threading.RLock(),
        on_block=lambda block, first: None,
        on_checkpoint=lambda n, c: None,
    )
    assert (resumed.height, resumed.checkpoint_time) == (2, 2_000)
    again.close()
