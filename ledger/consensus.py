"""Tendermint consensus (Algorithm 1 of "The latest gossip on BFT consensus",
Buchman, Kwon, Milosevic, 2018) as a pure state machine.

The machine takes events and returns effects; it never reads a clock, opens a socket
or starts a thread::

    machine.start(height)        -> [Effect]   (StartRound(0) of that height)
    machine.on_message(message)  -> [Effect]   (a Proposal or a Vote from the network)
    machine.on_timeout(timeout)  -> [Effect]   (a timer set by ScheduleTimeout fired)

Effects are :class:`Broadcast` (send to every *other* validator: the machine has
already applied its own message to itself), :class:`ScheduleTimeout` and
:class:`Decide`. After a Decide the caller applies the block and calls
``start(machine.next_height)``.

Line numbers in comments refer to Algorithm 1 of the paper. The paper's rules are
conditions over the message log; after every event the machine evaluates them until
none fires (the paper's "upon" rules run atomically), so the order in which messages
arrive never matters for which rules are eventually enabled.

Invariants:

- n = 3f+1 validators of voting power 1; quorum 2f+1 = floor(2n/3)+1, skip f+1.
- Votes are counted as the paper's upon-rules read the message log: "2f+1 ⟨PREVOTE,
  h, r, id(v)⟩" means 2f+1 distinct senders of a prevote for v, and "2f+1 ⟨PREVOTE,
  h, r, ∗⟩" 2f+1 distinct senders of any prevote. An equivocating validator therefore
  counts towards each value it voted for (safe: two quorums share an honest validator,
  and an honest one votes once); counting only its first vote would let honest logs
  diverge for good (one decides with its vote, another never can). Each second value is
  recorded as :class:`Equivocation` evidence; at most ``MAX_VOTES_PER_SENDER`` values
  are kept per sender, round and kind.
- Evidence is kept in :attr:`Consensus.evidence` across heights (at most
  ``MAX_EVIDENCE`` entries) until :meth:`Consensus.take_evidence` drains it; the
  machine itself never writes it anywhere (a validator process stores what it drains:
  :meth:`ledger.storage.LedgerStore.put_evidence`).
- Before signing a proposal or vote the machine calls ``VoteGuard.record``, which
  persists the choice and refuses a different value for the same (height, round,
  step); a refused vote is not sent, and the machine advances its step as if it had
  been (its earlier, identical-step vote is already out).
- Memory is bounded: future heights are buffered up to ``MAX_HEIGHTS_AHEAD`` and
  ``MAX_BUFFERED`` messages, each sender may occupy at most ``MAX_FUTURE_ROUNDS``
  rounds above the current one, each round keeps at most ``MAX_PROPOSALS_PER_ROUND``
  distinct proposals and ``MAX_VOTES_PER_SENDER`` values per sender and kind.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from farm import ed25519
from ledger.block import (
    HASH_SIZE,
    Block,
    CommitCertificate,
    CommitSig,
    ValidatorSet,
    VoteKind,
)
from ledger.errors import ConsensusError, DoubleSignError
from ledger.messages import (
    Equivocation,
    Message,
    Proposal,
    Vote,
    sign_proposal,
    sign_vote,
)

__all__ = [
    "MAX_BUFFERED",
    "MAX_FUTURE_ROUNDS",
    "MAX_HEIGHTS_AHEAD",
    "MAX_PROPOSALS_PER_ROUND",
    "MAX_VOTES_PER_SENDER",
    "Application",
    "Broadcast",
    "Consensus",
    "ConsensusStats",
    "Decide",
    "Effect",
    "ScheduleTimeout",
    "Step",
    "Timeout",
    "TimeoutConfig",
    "TimeoutKind",
    "VoteGuard",
]

log = logging.getLogger(__name__)

MAX_HEIGHTS_AHEAD = 4
MAX_BUFFERED = 10_000
MAX_FUTURE_ROUNDS = 16
MAX_PROPOSALS_PER_ROUND = 4
MAX_VOTES_PER_SENDER = 4
MAX_EVIDENCE = 1_000


# --------------------------------------------------------------------------- effects


class Step(IntEnum):
    """step_p; ordered so that ``step >= PREVOTE`` reads as in the paper."""

    PROPOSE = 0
    PREVOTE = 1
    PRECOMMIT = 2


class TimeoutKind(StrEnum):
    """The three timeouts of the algorithm."""

    PROPOSE = "propose"
    PREVOTE = "prevote"
    PRECOMMIT = "precommit"


@dataclass(frozen=True)
class Timeout:
    """A timer the caller hands back through :meth:`Consensus.on_timeout`."""

    kind: TimeoutKind
    height: int
    round: int


@dataclass(frozen=True)
class TimeoutConfig:
    """timeoutX(r) = base + r * delta, in seconds; growing with the round is what lets
    rounds outlast any message delay after GST."""

    propose_base: float = 3.0
    propose_delta: float = 0.5
    prevote_base: float = 1.0
    prevote_delta: float = 0.5
    precommit_base: float = 1.0
    precommit_delta: float = 0.5

    def delay(self, kind: TimeoutKind, round: int) -> float:
        """The delay of timeout ``kind`` in ``round``."""
        if kind is TimeoutKind.PROPOSE:
            return self.propose_base + round * self.propose_delta
        if kind is TimeoutKind.PREVOTE:
            return self.prevote_base + round * self.prevote_delta
        return self.precommit_base + round * self.precommit_delta


@dataclass(frozen=True)
class Broadcast:
    """Send ``message`` to every other validator."""

    message: Message


@dataclass(frozen=True)
class ScheduleTimeout:
    """Call ``on_timeout(self.timeout)`` after ``delay_s`` seconds."""

    kind: TimeoutKind
    height: int
    round: int
    delay_s: float

    @property
    def timeout(self) -> Timeout:
        """The value to hand back when the timer fires."""
        return Timeout(self.kind, self.height, self.round)


@dataclass(frozen=True)
class Decide:
    """decision_p[height] = block, proven by ``certificate``."""

    height: int
    block: Block
    certificate: CommitCertificate


Effect = Broadcast | ScheduleTimeout | Decide


# --------------------------------------------------------------------------- ports


class Application(Protocol):
    """The replicated application: builds blocks and re-checks them."""

    def propose(self, height: int) -> Block:
        """Build a block for ``height`` from the mempool (getValue() of the paper)."""
        ...

    def validate(self, block: Block) -> str | None:
        """valid(v): None if the block is valid, otherwise the reason it is not."""
        ...


class VoteGuard(Protocol):
    """Double-sign protection that survives a crash."""

    def record(self, height: int, round: int, step: str, value_hash: bytes | None) -> None:
        """Durably record that this validator signs ``value_hash`` (None for nil) at
        (height, round, step), before returning; recording the same value again is a
        no-op.

        Raises:
            DoubleSignError: a different value was already recorded for that slot.
        """
        ...


# --------------------------------------------------------------------------- state


@dataclass
class ConsensusStats:
    """Counters of what the machine received and dropped (never reset)."""

    received: int = 0
    accepted: int = 0
    duplicate: int = 0
    malformed: int = 0
    unknown_validator: int = 0
    bad_signature: int = 0
    wrong_proposer: int = 0
    stale: int = 0
    buffered: int = 0
    dropped_buffer_full: int = 0
    dropped_far_future: int = 0
    equivocations: int = 0
    invalid_blocks: int = 0
    guard_refusals: int = 0


@dataclass
class _RoundLog:
    """The message log of one round of the current height."""

    proposals: dict[bytes, Proposal] = field(default_factory=dict)  # arrival order
    # sender → value → vote; an equivocator has several values, each counted for its value
    prevotes: dict[str, dict[bytes | None, Vote]] = field(default_factory=dict)
    precommits: dict[str, dict[bytes | None, Vote]] = field(default_factory=dict)
    # value → number of distinct senders that voted for it
    prevote_tally: Counter[bytes | None] = field(default_factory=Counter)
    precommit_tally: Counter[bytes | None] = field(default_factory=Counter)
    senders: set[str] = field(default_factory=set)


def _well_formed(msg: Message) -> bool:
    if msg.height < 0 or msg.round < 0:
        return False
    if isinstance(msg, Proposal):
        return isinstance(msg.block, Block) and -1 <= msg.valid_round < msg.round
    # A plain "prevote" string would sign the same bytes as VoteKind.PREVOTE but fail the
    # identity checks below, so only the enum is well formed.
    return isinstance(msg.kind, VoteKind) and (
        msg.block_hash is None
        or (isinstance(msg.block_hash, bytes) and len(msg.block_hash) == HASH_SIZE)
    )


class Consensus:
    """One validator's Tendermint state machine (see the module docstring).

    Args:
        validator_id: this validator's id, a member of ``validators``.
        key: its Ed25519 signing key.
        validators: the genesis validators in order (fixes proposer(h, r)).
        app: builds and validates blocks.
        vote_guard: refuses to sign two different values for one (h, r, step).
        timeouts: timeout schedule.
    """

    def __init__(
        self,
        validator_id: str,
        key: Ed25519PrivateKey,
        validators: ValidatorSet,
        app: Application,
        vote_guard: VoteGuard,
        *,
        timeouts: TimeoutConfig | None = None,
    ) -> None:
        keys = validators.keys
        if validator_id not in keys:
            raise ConsensusError(f"{validator_id!r} is not one of the validators")
        if key.public_key() != keys[validator_id]:
            raise ConsensusError(f"the signing key is not {validator_id!r}'s registered key")
        self.id = validator_id
        self._key = key
        self.validators = validators
        self._keys = keys
        self._app = app
        self._guard = vote_guard
        self.timeouts = timeouts or TimeoutConfig()
        self.stats = ConsensusStats()
        self.evidence: list[Equivocation] = []
        self.last_commit: CommitCertificate | None = None
        self.last_block: Block | None = None

        self.height = 0
        self.round = 0
        self.step = Step.PROPOSE
        self.decision: Block | None = None
        self.locked_value: Block | None = None
        self.locked_round = -1
        self.valid_value: Block | None = None
        self.valid_round = -1
        self._running = False
        self._reset_height_state()
        self._future: dict[int, list[Message]] = {}
        self._future_count = 0
        self._future_by_sender: Counter[str] = Counter()
        self._effects: list[Effect] = []

    # ------------------------------------------------------------------ public API

    @property
    def next_height(self) -> int:
        """The height to start after the current one is decided."""
        return self.height + 1 if self.decision is not None else self.height

    def start(self, height: int) -> list[Effect]:
        """Start consensus for ``height`` (StartRound(0)) and replay buffered messages.

        Raises:
            ConsensusError: ``height`` is below one this machine already started.
        """
        if height < self.height or (height == self.height and self._running):
            raise ConsensusError(f"cannot start height {height}: already at {self.height}")
        self.height = height
        self._running = True
        self._reset_height_state()
        self._effects = []
        self._start_round(0)
        for h in [h for h in self._future if h <= height]:
            msgs = self._future.pop(h)
            self._future_count -= len(msgs)
            self._future_by_sender.subtract(m.sender for m in msgs)
            if h == height:
                for msg in msgs:
                    self._add_to_log(msg)
        self._run_rules()
        return self._take_effects()

    def take_evidence(self) -> list[Equivocation]:
        """The evidence recorded since the last call (oldest first), removed from
        :attr:`evidence`; a caller that persists evidence drains it after every event,
        so the ``MAX_EVIDENCE`` cap only bounds what one event can record."""
        taken, self.evidence = self.evidence, []
        return taken

    def on_message(self, msg: Message) -> list[Effect]:
        """Check and apply a proposal or vote received from the network.

        A message that is malformed, signed badly, from an unknown validator or (for a
        proposal) not from proposer(h, r) is dropped and counted in :attr:`stats`.
        Messages of a later height are buffered until that height starts.
        """
        self.stats.received += 1
        if isinstance(msg, Proposal | Vote) and (
            msg.height < self.height or (msg.height == self.height and self.decision is not None)
        ):
            self.stats.stale += 1  # not worth a signature check
            return []
        if not self._check(msg):
            return []
        if msg.height > self.height or not self._running:
            self._buffer(msg)
            return []
        self._effects = []
        if self._add_to_log(msg):
            self._run_rules()
        return self._take_effects()

    def on_timeout(self, timeout: Timeout) -> list[Effect]:
        """Lines 57-67: OnTimeoutPropose / OnTimeoutPrevote / OnTimeoutPrecommit."""
        self._effects = []
        if timeout.height != self.height or self.decision is not None or not self._running:
            return []
        if timeout.round != self.round:
            return []
        if timeout.kind is TimeoutKind.PROPOSE and self.step is Step.PROPOSE:
            self._vote(VoteKind.PREVOTE, None)  # line 59
            self.step = Step.PREVOTE
        elif timeout.kind is TimeoutKind.PREVOTE and self.step is Step.PREVOTE:
            self._vote(VoteKind.PRECOMMIT, None)  # line 63
            self.step = Step.PRECOMMIT
        elif timeout.kind is TimeoutKind.PRECOMMIT:
            self._start_round(self.round + 1)  # line 67
        else:
            return []
        self._run_rules()
        return self._take_effects()

    # ------------------------------------------------------------------ receipt

    def _check(self, msg: Message) -> bool:
        """Structure, membership, proposer and signature; counts what it drops."""
        reason = self._rejection(msg)
        if reason is None:
            return True
        setattr(self.stats, reason, getattr(self.stats, reason) + 1)
        return False

    def _rejection(self, msg: Message) -> str | None:
        """The stats counter to bump if ``msg`` must be dropped, else None."""
        if not isinstance(msg, Proposal | Vote) or not _well_formed(msg):
            return "malformed"
        key = self._keys.get(msg.sender)
        if key is None:
            return "unknown_validator"
        if isinstance(msg, Proposal) and msg.proposer != self.validators.proposer(
            msg.height, msg.round
        ):
            return "wrong_proposer"
        if not ed25519.verify(key, msg.signature, msg.sign_bytes()):
            return "bad_signature"
        return None

    def _buffer(self, msg: Message) -> None:
        """Keep a checked message of a later height; each sender gets an equal share."""
        if msg.height > self.height + MAX_HEIGHTS_AHEAD:
            self.stats.dropped_far_future += 1
            return
        if (
            self._future_count >= MAX_BUFFERED
            or self._future_by_sender[msg.sender] >= MAX_BUFFERED // self.validators.n
        ):
            self.stats.dropped_buffer_full += 1
            return
        self._future.setdefault(msg.height, []).append(msg)
        self._future_count += 1
        self._future_by_sender[msg.sender] += 1
        self.stats.buffered += 1

    def _add_to_log(self, msg: Message) -> bool:
        """Put a checked message of the current height in the log; True if it is new."""
        rlog = self._round_log_for(msg)
        if rlog is None:
            self.stats.dropped_far_future += 1
            return False
        added = (
            self._add_proposal(rlog, msg)
            if isinstance(msg, Proposal)
            else self._add_vote(rlog, msg)
        )
        if added:
            rlog.senders.add(msg.sender)
            self.stats.accepted += 1
        return added

    def _round_log_for(self, msg: Message) -> _RoundLog | None:
        """The log of the message's round, or None if its sender already occupies too
        many rounds above the current one."""
        rlog = self._rounds.get(msg.round)
        if (
            msg.round > self.round
            and (rlog is None or msg.sender not in rlog.senders)
            and self._future_rounds_of(msg.sender) >= MAX_FUTURE_ROUNDS
        ):
            return None
        if rlog is None:
            rlog = self._rounds[msg.round] = _RoundLog()
        return rlog

    def _add_proposal(self, rlog: _RoundLog, msg: Proposal) -> bool:
        bh = msg.block.hash()
        if bh in rlog.proposals:
            self.stats.duplicate += 1
            return False
        if rlog.proposals:
            self._record_evidence(next(iter(rlog.proposals.values())), msg)
            if len(rlog.proposals) >= MAX_PROPOSALS_PER_ROUND:
                return False
        rlog.proposals[bh] = msg
        return True

    def _add_vote(self, rlog: _RoundLog, msg: Vote) -> bool:
        votes, tally = (
            (rlog.prevotes, rlog.prevote_tally)
            if msg.kind is VoteKind.PREVOTE
            else (rlog.precommits, rlog.precommit_tally)
        )
        mine = votes.setdefault(msg.validator, {})
        if msg.block_hash in mine:
            self.stats.duplicate += 1
            return False
        if mine:
            self._record_evidence(next(iter(mine.values())), msg)
            if len(mine) >= MAX_VOTES_PER_SENDER:
                return False
        mine[msg.block_hash] = msg
        tally[msg.block_hash] += 1
        return True

    def _future_rounds_of(self, sender: str) -> int:
        return sum(1 for r, rl in self._rounds.items() if r > self.round and sender in rl.senders)

    def _record_evidence(self, first: Message, second: Message) -> None:
        self.stats.equivocations += 1
        if len(self.evidence) < MAX_EVIDENCE:
            self.evidence.append(Equivocation(second.sender, first, second))
        log.warning(
            "equivocation by %s at height %d round %d", second.sender, second.height, second.round
        )

    # ------------------------------------------------------------------ algorithm

    def _reset_height_state(self) -> None:
        """Line 54: reset locked/valid values and empty the message log."""
        self.round = 0
        self.step = Step.PROPOSE
        self.decision = None
        self.locked_value = None
        self.locked_round = -1
        self.valid_value = None
        self.valid_round = -1
        self._rounds: dict[int, _RoundLog] = {}
        self._validity: dict[bytes, str | None] = {}
        self._prevote_timeout_rounds: set[int] = set()
        self._precommit_timeout_rounds: set[int] = set()
        self._polka_rounds: set[int] = set()

    def _take_effects(self) -> list[Effect]:
        effects, self._effects = self._effects, []
        return effects

    def _schedule(self, kind: TimeoutKind) -> None:
        delay = self.timeouts.delay(kind, self.round)
        self._effects.append(ScheduleTimeout(kind, self.height, self.round, delay))

    def _valid(self, block: Block) -> bool:
        """valid(v), cached per block hash for the height; a block of another height is
        never valid here."""
        bh = block.hash()
        if bh not in self._validity:
            reason = (
                f"block is for height {block.height}, not {self.height}"
                if block.height != self.height
                else self._app.validate(block)
            )
            self._validity[bh] = reason
            if reason is not None:
                self.stats.invalid_blocks += 1
                log.info("invalid block %s at height %d: %s", bh.hex()[:16], self.height, reason)
        return self._validity[bh] is None

    def _start_round(self, round: int) -> None:
        """Lines 11-21: StartRound(round)."""
        self.round = round
        self.step = Step.PROPOSE
        if self.validators.proposer(self.height, round) == self.id:
            block = (
                self.valid_value if self.valid_value is not None else self._app.propose(self.height)
            )
            try:
                self._guard.record(self.height, round, "proposal", block.hash())
            except DoubleSignError as exc:
                self.stats.guard_refusals += 1
                log.warning("not proposing at height %d round %d: %s", self.height, round, exc)
                self._schedule(TimeoutKind.PROPOSE)  # so that this round can still end
                return
            proposal = sign_proposal(
                self._key,
                height=self.height,
                round=round,
                block=block,
                valid_round=self.valid_round,
                proposer=self.id,
            )
            self._add_to_log(proposal)
            self._effects.append(Broadcast(proposal))
        else:
            self._schedule(TimeoutKind.PROPOSE)

    def _vote(self, kind: VoteKind, block_hash: bytes | None) -> None:
        """Sign, apply to self and broadcast a vote for the current round, unless the
        guard refuses it."""
        try:
            self._guard.record(self.height, self.round, str(kind), block_hash)
        except DoubleSignError as exc:
            self.stats.guard_refusals += 1
            log.warning("not voting at height %d round %d: %s", self.height, self.round, exc)
            return
        vote = sign_vote(
            self._key,
            kind=kind,
            height=self.height,
            round=self.round,
            block_hash=block_hash,
            validator=self.id,
        )
        self._add_to_log(vote)
        self._effects.append(Broadcast(vote))

    def _run_rules(self) -> None:
        """Fire enabled upon-rules until none is; each rule changes state when it fires."""
        rules = (
            self._upon_decide,
            self._upon_skip_round,
            self._upon_proposal,
            self._upon_polka_any,
            self._upon_polka_value,
            self._upon_polka_nil,
            self._upon_precommit_any,
        )
        while self.decision is None and any(rule() for rule in rules):
            pass

    def _upon_proposal(self) -> bool:
        """Lines 22-33: prevote on the proposal of this round (fresh, or with a polka
        at its valid round)."""
        if self.step is not Step.PROPOSE:
            return False
        rlog = self._rounds.get(self.round)
        if rlog is None:
            return False
        for bh, prop in rlog.proposals.items():
            v = prop.block
            vr = prop.valid_round
            if vr == -1:  # line 22
                ok = self._valid(v) and (self.locked_round == -1 or self._is_locked_on(bh))
            else:  # line 28; vr < round is checked on receipt
                vr_log = self._rounds.get(vr)
                if vr_log is None or vr_log.prevote_tally[bh] < self.validators.quorum:
                    continue
                ok = self._valid(v) and (self.locked_round <= vr or self._is_locked_on(bh))
            self._vote(VoteKind.PREVOTE, bh if ok else None)
            self.step = Step.PREVOTE
            return True
        return False

    def _is_locked_on(self, block_hash: bytes) -> bool:
        return self.locked_value is not None and self.locked_value.hash() == block_hash

    def _upon_polka_any(self) -> bool:
        """Lines 34-35: 2f+1 prevotes of any kind → schedule timeoutPrevote, once."""
        if self.step is not Step.PREVOTE or self.round in self._prevote_timeout_rounds:
            return False
        rlog = self._rounds.get(self.round)
        if rlog is None or len(rlog.prevotes) < self.validators.quorum:
            return False
        self._prevote_timeout_rounds.add(self.round)
        self._schedule(TimeoutKind.PREVOTE)
        return True

    def _upon_polka_value(self) -> bool:
        """Lines 36-43: a proposal with 2f+1 prevotes for it → lock and precommit (if
        still in prevote), and remember it as the valid value, once per round."""
        if self.step < Step.PREVOTE or self.round in self._polka_rounds:
            return False
        rlog = self._rounds.get(self.round)
        if rlog is None:
            return False
        for bh, prop in rlog.proposals.items():
            if rlog.prevote_tally[bh] < self.validators.quorum or not self._valid(prop.block):
                continue
            self._polka_rounds.add(self.round)
            if self.step is Step.PREVOTE:
                self.locked_value = prop.block
                self.locked_round = self.round
                self._vote(VoteKind.PRECOMMIT, bh)
                self.step = Step.PRECOMMIT
            self.valid_value = prop.block
            self.valid_round = self.round
            return True
        return False

    def _upon_polka_nil(self) -> bool:
        """Lines 44-46: 2f+1 nil prevotes → precommit nil."""
        if self.step is not Step.PREVOTE:
            return False
        rlog = self._rounds.get(self.round)
        if rlog is None or rlog.prevote_tally[None] < self.validators.quorum:
            return False
        self._vote(VoteKind.PRECOMMIT, None)
        self.step = Step.PRECOMMIT
        return True

    def _upon_precommit_any(self) -> bool:
        """Lines 47-48: 2f+1 precommits of any kind → schedule timeoutPrecommit, once."""
        if self.round in self._precommit_timeout_rounds:
            return False
        rlog = self._rounds.get(self.round)
        if rlog is None or len(rlog.precommits) < self.validators.quorum:
            return False
        self._precommit_timeout_rounds.add(self.round)
        self._schedule(TimeoutKind.PRECOMMIT)
        return True

    def _upon_decide(self) -> bool:
        """Lines 49-54: a proposal of any round with 2f+1 precommits for it → decide."""
        if self.decision is not None:
            return False
        quorum = self.validators.quorum
        for r, rlog in self._rounds.items():
            for bh, count in rlog.precommit_tally.items():
                if bh is None or count < quorum:
                    continue
                prop = rlog.proposals.get(bh)
                if prop is None or not self._valid(prop.block):
                    continue
                sigs = tuple(
                    CommitSig(vid, votes[bh].signature)
                    for vid, votes in sorted(rlog.precommits.items())
                    if bh in votes
                )
                cert = CommitCertificate(self.height, r, bh, sigs)
                self.decision = prop.block
                self.last_block = prop.block
                self.last_commit = cert
                self._effects.append(Decide(self.height, prop.block, cert))
                return True
        return False

    def _upon_skip_round(self) -> bool:
        """Lines 55-56: f+1 senders in a higher round → StartRound(that round)."""
        target = max(
            (
                r
                for r, rlog in self._rounds.items()
                if r > self.round and len(rlog.senders) >= self.validators.skip
            ),
            default=None,
        )
        if target is None:
            return False
        self._start_round(target)
        return True
