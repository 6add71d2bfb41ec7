"""The machine's evidence: kept across heights until drained, described by its slot."""

from __future__ import annotations

from ledger.block import Block, ValidatorSet, VoteKind
from ledger.consensus import Consensus
from ledger.messages import Equivocation
from ledger.vote_guard import MemoryVoteGuard
from tests.support.equivocation import KEYS, block, proposal, value, vote

VS = ValidatorSet.of([(v, k.public_key()) for v, k in KEYS.items()])


class _App:
    def propose(self, height: int) -> Block:
        return block("mine", height, "v0")

    def validate(self, block: Block) -> str | None:
        return None


def test_evidence_is_kept_across_heights_and_drained_once() -> None:
    m = Consensus("v0", KEYS["v0"], VS, _App(), MemoryVoteGuard())
    m.start(1)
    a, b = vote("v1", value("a")), vote("v1", value("b"))
    m.on_message(a)
    m.on_message(b)
    m.on_message(b)  # a duplicate is not evidence again
    assert m.evidence == [Equivocation("v1", a, b)]
    (ev,) = m.evidence
    assert (ev.height, ev.round, ev.kind) == (1, 0, "prevote")

    m.start(2)  # a new height resets the message log, not the evidence
    assert m.evidence == [ev]
    c = vote("v2", value("c"), height=2, round=1, kind=VoteKind.PRECOMMIT)
    d = vote("v2", None, height=2, round=1, kind=VoteKind.PRECOMMIT)
    m.on_message(c)
    m.on_message(d)
    p, q = proposal("v2", "p", height=2), proposal("v2", "q", height=2)  # v2 proposes (2, 0)
    m.on_message(p)
    m.on_message(q)
    assert m.take_evidence() == [
        ev,
        Equivocation("v2", c, d),
        Equivocation("v2", p, q),
    ]
    assert [(e.kind, e.round) for e in [Equivocation("v2", c, d), Equivocation("v2", p, q)]] == [
        ("precommit", 1),
        ("proposal", 0),
    ]
    assert m.evidence == [] and m.take_evidence() == []
    assert m.stats.equivocations == 3
