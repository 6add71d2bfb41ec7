"""A restarted validator resumes its height in a fresh round, still locked."""

from __future__ import annotations

import hashlib
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.block import Block, ValidatorSet, VoteKind
from ledger.consensus import Broadcast, ScheduleTimeout
from ledger.messages import Proposal, Vote, sign_proposal
from ledger.node import _resume_point, _ResumingConsensus
from ledger.vote_guard import SqliteVoteGuard


def _key(i: int) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"resume/{i}".encode()).digest())


KEYS = {f"v{i}": _key(i) for i in range(4)}
VS = ValidatorSet.of([(v, k.public_key()) for v, k in KEYS.items()])


def _block(tag: str) -> Block:
    return Block(1, bytes(32), (tag.encode(),), hashlib.sha256(tag.encode()).digest(), 1, "v1")


class _App:
    def propose(self, height: int) -> Block:
        return _block("fresh")

    def validate(self, block: Block) -> str | None:
        return None


class _Lock:
    def __init__(self, lock: tuple[int, int, Block] | None) -> None:
        self.lock = lock

    def get_lock(self) -> tuple[int, int, Block] | None:
        return self.lock


def test_resume_starts_after_the_last_signed_round_and_keeps_the_lock(tmp_path: Path) -> None:
    locked = _block("locked")
    guard = SqliteVoteGuard(tmp_path / "votes.sqlite")
    guard.record(1, 0, "prevote", None)
    guard.record(1, 1, "prevote", locked.hash())
    guard.record(1, 1, "precommit", locked.hash())
    store = _Lock((1, 1, locked))
    point = _resume_point(tmp_path / "votes.sqlite", store, 1)  # type: ignore[arg-type]
    assert point == (1, 1, 1, locked)
    assert _resume_point(tmp_path / "votes.sqlite", store, 2) is None  # type: ignore[arg-type]
    unlocked = _Lock(None)
    assert _resume_point(tmp_path / "votes.sqlite", unlocked, 1) == (1, 1, -1, None)  # type: ignore[arg-type]

    # v2 is proposer of (1, 1): round 2's proposer (v3) is not us, v0 is for round 3
    machine = _ResumingConsensus("v0", KEYS["v0"], VS, _App(), guard)
    machine.resume = point
    effects = machine.start(1)
    assert machine.round == 2
    assert machine.locked_round == 1 and machine.locked_value == locked
    assert any(isinstance(e, ScheduleTimeout) for e in effects)
    # a fresh proposal of another value in round 2: locked, so prevote nil
    other = sign_proposal(
        KEYS["v3"], height=1, round=2, block=_block("other"), valid_round=-1, proposer="v3"
    )
    votes = [
        e.message
        for e in machine.on_message(other)
        if isinstance(e, Broadcast) and isinstance(e.message, Vote)
    ]
    assert [(v.kind, v.block_hash) for v in votes] == [(VoteKind.PREVOTE, None)]
    # and the locked value re-proposed as fresh in round 3 gets its prevote
    machine2 = _ResumingConsensus("v0", KEYS["v0"], VS, _App(), guard)
    machine2.resume = (1, 2, 1, locked)
    machine2.start(1)
    assert machine2.round == 3  # v0 proposes round 3: the locked block, valid round -1
    guard.close()


def test_proposer_re_proposes_its_locked_block() -> None:
    from ledger.vote_guard import MemoryVoteGuard

    locked = _block("locked")
    machine = _ResumingConsensus("v0", KEYS["v0"], VS, _App(), MemoryVoteGuard())
    machine.resume = (1, 2, 1, locked)
    effects = machine.start(1)
    proposals = [
        e.message for e in effects if isinstance(e, Broadcast) and isinstance(e.message, Proposal)
    ]
    assert [(p.round, p.block, p.valid_round) for p in proposals] == [(3, locked, -1)]
