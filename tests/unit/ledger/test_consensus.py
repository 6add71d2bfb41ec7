"""Single rules of the Tendermint state machine, driven by hand.

The subject is validator v0 of four (f = 1, quorum 3, skip 2) at height 1, where
proposer(1, r) is v1, v2, v3, v0 for r = 0, 1, 2, 3.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from farm.canonical import canonical_json
from ledger.block import Block, ValidatorSet, VoteKind, verify_commit_certificate
from ledger.consensus import (
    Broadcast,
    Consensus,
    Decide,
    Effect,
    ScheduleTimeout,
    Step,
    Timeout,
    TimeoutConfig,
    TimeoutKind,
    VoteGuard,
)
from ledger.errors import ConsensusError, DoubleSignError
from ledger.messages import Message, Proposal, Vote, message_from_json, sign_proposal, sign_vote
from ledger.vote_guard import MemoryVoteGuard, SqliteVoteGuard

PREVOTE, PRECOMMIT = VoteKind.PREVOTE, VoteKind.PRECOMMIT


def _key(i: int) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"cons-test/{i}".encode()).digest())


KEYS = {f"v{i}": _key(i) for i in range(4)}
VS = ValidatorSet.of([(v, k.public_key()) for v, k in KEYS.items()])


def block(height: int, tag: str) -> Block:
    return Block(
        height=height,
        prev_hash=bytes(32),
        txs=(tag.encode(),),
        log_root=hashlib.sha256(tag.encode()).digest(),
        log_size=1,
        proposer="v0",
    )


A, B, BAD = block(1, "A"), block(1, "B"), block(1, "bad:tx")


class App:
    """Valid unless a transaction starts with ``bad``; proposes block "app"."""

    def __init__(self) -> None:
        self.validated: list[bytes] = []

    def propose(self, height: int) -> Block:
        return block(height, "app")

    def validate(self, blk: Block) -> str | None:
        self.validated.append(blk.hash())
        return "bad transaction" if any(tx.startswith(b"bad") for tx in blk.txs) else None


def machine(vid: str = "v0", guard: VoteGuard | None = None) -> Consensus:
    return Consensus(vid, KEYS[vid], VS, App(), guard or MemoryVoteGuard())


def prop(h: int, r: int, blk: Block, vr: int = -1, by: str | None = None) -> Proposal:
    by = by or VS.proposer(h, r)
    return sign_proposal(KEYS[by], height=h, round=r, block=blk, valid_round=vr, proposer=by)


def vote(kind: VoteKind, h: int, r: int, blk: Block | None, by: str) -> Vote:
    return sign_vote(
        KEYS[by],
        kind=kind,
        height=h,
        round=r,
        block_hash=None if blk is None else blk.hash(),
        validator=by,
    )


def feed(m: Consensus, *msgs: Message) -> list[Effect]:
    out: list[Effect] = []
    for msg in msgs:
        out += m.on_message(msg)
    return out


def sent(effects: list[Effect]) -> list[Message]:
    return [e.message for e in effects if isinstance(e, Broadcast)]


def sent_votes(effects: list[Effect], kind: VoteKind) -> list[bytes | None]:
    return [m.block_hash for m in sent(effects) if isinstance(m, Vote) and m.kind is kind]


def timers(effects: list[Effect]) -> list[ScheduleTimeout]:
    return [e for e in effects if isinstance(e, ScheduleTimeout)]


def lock_on_a_in_round_0(m: Consensus) -> list[Effect]:
    m.start(1)
    return feed(m, prop(1, 0, A), vote(PREVOTE, 1, 0, A, "v1"), vote(PREVOTE, 1, 0, A, "v2"))


# ------------------------------------------------------------------ start and proposing


def test_non_proposer_starts_by_scheduling_timeout_propose() -> None:
    m = machine()
    assert m.start(1) == [ScheduleTimeout(TimeoutKind.PROPOSE, 1, 0, 3.0)]
    assert (m.height, m.round, m.step) == (1, 0, Step.PROPOSE)


def test_proposer_proposes_a_fresh_block_and_prevotes_it() -> None:
    m = machine("v1")
    effects = m.start(1)
    proposal = sent(effects)[0]
    assert isinstance(proposal, Proposal)
    assert (proposal.round, proposal.valid_round, proposal.block) == (0, -1, block(1, "app"))
    assert sent_votes(effects, PREVOTE) == [block(1, "app").hash()]
    assert m.step is Step.PREVOTE


def test_cannot_start_an_old_height_or_a_running_one_twice() -> None:
    m = machine()
    m.start(3)
    for h in (2, 3):
        with pytest.raises(ConsensusError, match="cannot start"):
            m.start(h)


def test_key_must_match_the_validator() -> None:
    with pytest.raises(ConsensusError, match="registered key"):
        Consensus("v0", KEYS["v1"], VS, App(), MemoryVoteGuard())
    with pytest.raises(ConsensusError, match="not one of the validators"):
        Consensus("v9", KEYS["v1"], VS, App(), MemoryVoteGuard())


# ------------------------------------------------------------------ lines 22-33: prevote


def test_prevotes_a_valid_fresh_proposal() -> None:
    m = machine()
    m.start(1)
    assert sent_votes(feed(m, prop(1, 0, A)), PREVOTE) == [A.hash()]
    assert m.step is Step.PREVOTE


def test_nil_prevote_on_an_invalid_block() -> None:
    m = machine()
    m.start(1)
    assert sent_votes(feed(m, prop(1, 0, BAD)), PREVOTE) == [None]
    assert m.stats.invalid_blocks == 1


def test_nil_prevote_on_a_block_of_another_height() -> None:
    m = machine()
    m.start(1)
    assert sent_votes(feed(m, prop(1, 0, block(2, "A"))), PREVOTE) == [None]


def test_timeout_propose_prevotes_nil_only_in_its_round_and_step() -> None:
    m = machine()
    m.start(1)
    assert m.on_timeout(Timeout(TimeoutKind.PROPOSE, 1, 1)) == []
    assert m.on_timeout(Timeout(TimeoutKind.PROPOSE, 2, 0)) == []
    assert sent_votes(m.on_timeout(Timeout(TimeoutKind.PROPOSE, 1, 0)), PREVOTE) == [None]
    assert m.on_timeout(Timeout(TimeoutKind.PROPOSE, 1, 0)) == []  # already prevoted


# ------------------------------------------------------------------ lines 34-48


def test_polka_locks_and_precommits() -> None:
    m = machine()
    effects = lock_on_a_in_round_0(m)
    assert sent_votes(effects, PRECOMMIT) == [A.hash()]
    assert (m.locked_value, m.locked_round, m.valid_value, m.valid_round) == (A, 0, A, 0)
    assert ScheduleTimeout(TimeoutKind.PREVOTE, 1, 0, 1.0) in effects  # line 34
    assert m.step is Step.PRECOMMIT


def test_polka_after_precommitting_nil_updates_valid_value_but_not_lock() -> None:
    m = machine()
    m.start(1)
    m.on_timeout(Timeout(TimeoutKind.PROPOSE, 1, 0))  # prevote nil
    feed(m, vote(PREVOTE, 1, 0, A, "v1"), vote(PREVOTE, 1, 0, A, "v2"))
    assert sent_votes(m.on_timeout(Timeout(TimeoutKind.PREVOTE, 1, 0)), PRECOMMIT) == [None]
    feed(m, vote(PREVOTE, 1, 0, A, "v3"), prop(1, 0, A))  # now a polka for A, too late
    assert (m.locked_round, m.valid_value, m.valid_round) == (-1, A, 0)


def test_nil_polka_precommits_nil() -> None:
    m = machine()
    m.start(1)
    m.on_timeout(Timeout(TimeoutKind.PROPOSE, 1, 0))
    effects = feed(m, vote(PREVOTE, 1, 0, None, "v1"), vote(PREVOTE, 1, 0, None, "v2"))
    assert sent_votes(effects, PRECOMMIT) == [None]
    assert m.locked_round == -1


def test_any_precommit_quorum_schedules_timeout_precommit_and_then_next_round() -> None:
    m = machine()
    lock_on_a_in_round_0(m)
    effects = feed(m, vote(PRECOMMIT, 1, 0, None, "v1"), vote(PRECOMMIT, 1, 0, B, "v2"))
    assert timers(effects) == [ScheduleTimeout(TimeoutKind.PRECOMMIT, 1, 0, 1.0)]
    effects = m.on_timeout(Timeout(TimeoutKind.PRECOMMIT, 1, 0))
    assert (m.round, m.step) == (1, Step.PROPOSE)
    assert timers(effects) == [ScheduleTimeout(TimeoutKind.PROPOSE, 1, 1, 3.5)]


# ------------------------------------------------------------------ locking across rounds


def _to_round_1_locked_on_a() -> Consensus:
    m = machine()
    lock_on_a_in_round_0(m)
    feed(m, vote(PRECOMMIT, 1, 0, None, "v1"), vote(PRECOMMIT, 1, 0, None, "v2"))
    m.on_timeout(Timeout(TimeoutKind.PRECOMMIT, 1, 0))
    assert m.round == 1
    return m


def test_locked_validator_prevotes_nil_for_another_fresh_value() -> None:
    m = _to_round_1_locked_on_a()
    assert sent_votes(feed(m, prop(1, 1, B)), PREVOTE) == [None]
    assert m.locked_value == A


def test_locked_validator_prevotes_its_locked_value() -> None:
    m = _to_round_1_locked_on_a()
    assert sent_votes(feed(m, prop(1, 1, A)), PREVOTE) == [A.hash()]


def test_unlock_on_a_polka_of_a_higher_round() -> None:
    """Line 28: locked on A at round 0; a proposal of B with valid round 1 and a polka
    for B at round 1 → prevote B (lockedRound 0 <= vr 1)."""
    m = machine()
    lock_on_a_in_round_0(m)
    polka_b_round_1 = [vote(PREVOTE, 1, 1, B, v) for v in ("v1", "v2", "v3")]
    feed(m, *polka_b_round_1)  # f+1 senders of round 1: skip to it
    assert (m.round, m.step, m.locked_round) == (1, Step.PROPOSE, 0)
    effects = feed(m, prop(1, 2, B, vr=1), vote(PREVOTE, 1, 2, None, "v1"))  # skip to 2
    assert m.round == 2
    assert sent_votes(effects, PREVOTE) == [B.hash()]


def test_no_prevote_for_a_valid_round_without_its_polka() -> None:
    m = machine()
    lock_on_a_in_round_0(m)
    feed(m, vote(PREVOTE, 1, 1, B, "v1"), vote(PREVOTE, 1, 1, B, "v2"))  # only 2: no polka
    effects = feed(m, prop(1, 2, B, vr=1), vote(PREVOTE, 1, 2, None, "v1"))
    assert m.round == 2
    assert sent_votes(effects, PREVOTE) == []
    assert sent_votes(m.on_timeout(Timeout(TimeoutKind.PROPOSE, 1, 2)), PREVOTE) == [None]


def test_proposer_reproposes_its_valid_value_with_its_valid_round() -> None:
    m = machine()  # v0 proposes in round 3
    lock_on_a_in_round_0(m)
    effects = feed(m, vote(PREVOTE, 1, 3, None, "v1"), vote(PREVOTE, 1, 3, None, "v2"))
    proposal = next(msg for msg in sent(effects) if isinstance(msg, Proposal))
    assert (proposal.round, proposal.block, proposal.valid_round) == (3, A, 0)


# ------------------------------------------------------------------ lines 55-56 and timeouts


def test_f_plus_one_messages_of_a_higher_round_skip_to_it() -> None:
    m = machine()
    m.start(1)
    assert feed(m, vote(PREVOTE, 1, 2, None, "v1"), vote(PRECOMMIT, 1, 2, None, "v1")) == []
    assert m.round == 0  # one sender is not f+1, however many messages
    effects = feed(m, vote(PREVOTE, 1, 2, None, "v2"))
    assert (m.round, m.step) == (2, Step.PROPOSE)
    assert timers(effects) == [ScheduleTimeout(TimeoutKind.PROPOSE, 1, 2, 4.0)]


@pytest.mark.parametrize(
    ("kind", "delays"),
    [
        (TimeoutKind.PROPOSE, [3.0, 3.5, 4.0, 8.0]),
        (TimeoutKind.PREVOTE, [1.0, 1.5, 2.0, 6.0]),
        (TimeoutKind.PRECOMMIT, [1.0, 1.5, 2.0, 6.0]),
    ],
)
def test_timeouts_grow_with_the_round(kind: TimeoutKind, delays: list[float]) -> None:
    assert [TimeoutConfig().delay(kind, r) for r in (0, 1, 2, 10)] == delays


def test_machine_timeouts_grow_round_after_round() -> None:
    m = machine()
    m.start(1)
    delays = []
    for r in range(3):
        m.on_timeout(Timeout(TimeoutKind.PROPOSE, 1, r))
        others = [vote(PREVOTE, 1, r, None, v) for v in ("v1", "v2")]
        effects = feed(m, *others)
        effects += feed(m, *(vote(PRECOMMIT, 1, r, None, v) for v in ("v1", "v2")))
        delays.append(sorted((t.kind, t.delay_s) for t in timers(effects)))
        m.on_timeout(Timeout(TimeoutKind.PRECOMMIT, 1, r))
    assert delays == [
        [(TimeoutKind.PRECOMMIT, 1.0), (TimeoutKind.PREVOTE, 1.0)],
        [(TimeoutKind.PRECOMMIT, 1.5), (TimeoutKind.PREVOTE, 1.5)],
        [(TimeoutKind.PRECOMMIT, 2.0), (TimeoutKind.PREVOTE, 2.0)],
    ]


# ------------------------------------------------------------------ lines 49-54: decide


def _precommits(r: int, blk: Block, *by: str) -> list[Vote]:
    return [vote(PRECOMMIT, 1, r, blk, v) for v in by]


def test_decides_with_a_verifiable_certificate() -> None:
    m = machine()
    m.start(1)
    effects = feed(m, prop(1, 0, A), *_precommits(0, A, "v1", "v2", "v3"))
    decide = [e for e in effects if isinstance(e, Decide)]
    assert len(decide) == 1
    assert (decide[0].height, decide[0].block) == (1, A)
    verify_commit_certificate(decide[0].certificate, A.hash(), VS.keys, height=1)
    assert (m.next_height, m.last_commit, m.last_block) == (2, decide[0].certificate, A)
    assert feed(m, vote(PREVOTE, 1, 0, A, "v3")) == []
    assert m.stats.stale == 1


def test_decides_when_the_proposal_arrives_after_the_precommits() -> None:
    m = machine()
    m.start(1)
    assert not any(isinstance(e, Decide) for e in feed(m, *_precommits(0, A, "v1", "v2", "v3")))
    assert any(isinstance(e, Decide) for e in feed(m, prop(1, 0, A)))


def test_decides_on_a_round_it_has_left() -> None:
    m = machine()
    m.start(1)
    feed(m, vote(PREVOTE, 1, 1, None, "v1"), vote(PREVOTE, 1, 1, None, "v2"))
    assert m.round == 1
    effects = feed(m, prop(1, 0, A), *_precommits(0, A, "v1", "v2", "v3"))
    assert [e.certificate.round for e in effects if isinstance(e, Decide)] == [0]


def test_does_not_decide_an_invalid_block() -> None:
    m = machine()
    m.start(1)
    effects = feed(m, prop(1, 0, BAD), *_precommits(0, BAD, "v1", "v2", "v3"))
    assert not any(isinstance(e, Decide) for e in effects)


def test_future_height_is_buffered_and_replayed_on_start() -> None:
    m = machine()
    m.start(1)
    a2 = block(2, "A2")
    assert feed(m, prop(2, 0, a2)) == []
    assert m.stats.buffered == 1
    feed(m, prop(1, 0, A), *_precommits(0, A, "v1", "v2", "v3"))
    assert sent_votes(m.start(m.next_height), PREVOTE) == [a2.hash()]


# ------------------------------------------------------------------ receipt checks


def test_bad_signatures_unknown_validators_and_wrong_proposers_are_dropped() -> None:
    m = machine()
    m.start(1)
    good = prop(1, 0, A)
    outsider = Ed25519PrivateKey.from_private_bytes(bytes(32))
    stranger = sign_vote(outsider, kind=PREVOTE, height=1, round=0, block_hash=None, validator="x")
    assert feed(m, replace(good, signature=bytes(64))) == []
    assert feed(m, replace(good, block=B)) == []  # signature covers the block's hash
    assert feed(m, prop(1, 0, A, by="v2")) == []
    assert feed(m, stranger) == []
    assert feed(m, replace(vote(PREVOTE, 1, 0, A, "v1"), validator="v2")) == []
    assert feed(m, prop(1, 0, A, vr=0)) == []  # valid round must be below the round
    sloppy = vote(PRECOMMIT, 1, 0, A, "v1")
    assert feed(m, replace(sloppy, kind="precommit")) == []  # type: ignore[arg-type]
    assert feed(m, replace(sloppy, block_hash=b"short")) == []
    s = m.stats
    assert (s.bad_signature, s.wrong_proposer, s.unknown_validator, s.malformed) == (3, 1, 1, 3)
    assert m.step is Step.PROPOSE
    assert sent_votes(feed(m, good), PREVOTE) == [A.hash()]


def test_duplicates_count_once_and_an_equivocator_counts_for_each_value() -> None:
    m = machine()
    m.start(1)
    first = vote(PREVOTE, 1, 0, A, "v1")
    feed(m, first, first)
    assert m.stats.duplicate == 1
    second = vote(PREVOTE, 1, 0, B, "v1")
    feed(m, second, vote(PREVOTE, 1, 0, B, "v2"))
    assert [(e.validator, e.first, e.second) for e in m.evidence] == [("v1", first, second)]
    # As in the paper's message log, v1's prevote for B counts for B (as its prevote for
    # A counts for A): with v2 and v0's own prevote, B has its polka.
    effects = feed(m, prop(1, 0, B))
    assert sent_votes(effects, PRECOMMIT) == [B.hash()]
    assert m.locked_value == B


def test_equivocating_proposer_is_evidence_and_first_proposal_is_voted() -> None:
    m = machine()
    m.start(1)
    effects = feed(m, prop(1, 0, A), prop(1, 0, B))
    assert sent_votes(effects, PREVOTE) == [A.hash()]
    assert len(m.evidence) == 1


def test_messages_round_trip_through_json() -> None:
    for msg in (
        prop(1, 2, A, vr=1),
        vote(PREVOTE, 1, 0, None, "v2"),
        vote(PRECOMMIT, 3, 1, B, "v3"),
    ):
        wire = canonical_json(msg.to_json())
        assert message_from_json(json.loads(wire)) == msg
    with pytest.raises(ConsensusError):
        message_from_json({"type": "nope"})


# ------------------------------------------------------------------ double-sign protection


def test_restarted_validator_refuses_to_sign_a_conflicting_vote() -> None:
    guard = MemoryVoteGuard()
    before = machine(guard=guard)
    before.start(1)
    assert sent_votes(feed(before, prop(1, 0, A)), PREVOTE) == [A.hash()]
    # Crash; a new state machine with the same guard, and a Byzantine proposer that now
    # shows it a different block for the same round.
    after = machine(guard=guard)
    after.start(1)
    effects = feed(after, prop(1, 0, B))
    assert sent(effects) == []
    assert after.stats.guard_refusals == 1
    assert after.on_timeout(Timeout(TimeoutKind.PROPOSE, 1, 0)) == []  # nil is different too
    # The same vote may be signed again.
    again = machine(guard=guard)
    again.start(1)
    assert sent_votes(feed(again, prop(1, 0, A)), PREVOTE) == [A.hash()]


def test_restarted_proposer_does_not_propose_a_different_block() -> None:
    guard = MemoryVoteGuard()
    guard.record(1, 0, "proposal", B.hash())  # what it proposed before the crash
    m = machine("v1", guard)
    effects = m.start(1)
    assert sent(effects) == []
    assert timers(effects) == [ScheduleTimeout(TimeoutKind.PROPOSE, 1, 0, 3.0)]
    assert m.stats.guard_refusals == 1


@pytest.mark.parametrize("make", ["memory", "sqlite"])
def test_vote_guards(make: str, tmp_path: Path) -> None:
    path = tmp_path / "guard.sqlite"
    guard: MemoryVoteGuard | SqliteVoteGuard = (
        MemoryVoteGuard() if make == "memory" else SqliteVoteGuard(path)
    )
    guard.record(1, 0, "prevote", A.hash())
    guard.record(1, 0, "prevote", A.hash())
    guard.record(1, 0, "precommit", None)
    guard.record(1, 1, "prevote", B.hash())
    if isinstance(guard, SqliteVoteGuard):
        guard.close()
        guard = SqliteVoteGuard(path)  # a restart reads what was recorded
    with pytest.raises(DoubleSignError, match="already signed prevote"):
        guard.record(1, 0, "prevote", B.hash())
    with pytest.raises(DoubleSignError):
        guard.record(1, 0, "prevote", None)
    with pytest.raises(DoubleSignError, match="refusing to sign"):
        guard.record(1, 0, "precommit", A.hash())
    guard.prune(2)
    guard.record(1, 0, "prevote", B.hash())  # pruned heights are forgotten
    if isinstance(guard, SqliteVoteGuard):
        guard.close()
