"""A deterministic simulated network of N Tendermint validators in one process.

Everything random comes from one ``random.Random(seed)`` consumed in event order, and
the event queue is ordered by (deliver_at, seq), so a run is a function of its
arguments: a failure found with a seed replays exactly from that seed
(:attr:`SimResult.trace_digest` fingerprints the whole schedule).

The network model is the paper's partial synchrony: before GST messages may be slow,
reordered, duplicated, dropped or cut by partitions; from GST on every message between
correct validators arrives within ``stable_delay``. By default a message "dropped" or
cut off before GST is delivered after GST instead (the paper's gossip assumption: a
message sent at t arrives by max(t, GST) + Δ); ``permanent_loss=True`` loses it for
good, which may stop progress but must never break safety.

Faulty validators are modelled by :class:`Behaviour`: silent (crashed), an
equivocating proposer, a double voter, one that sends bad signatures, and one that
proposes and votes for invalid blocks.
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.block import Block, ValidatorSet, VoteKind
from ledger.consensus import (
    Broadcast,
    Consensus,
    ConsensusStats,
    Decide,
    Effect,
    ScheduleTimeout,
    Timeout,
    TimeoutConfig,
)
from ledger.messages import Message, Proposal, Vote
from ledger.vote_guard import MemoryVoteGuard

__all__ = [
    "GENESIS_HASH",
    "Behaviour",
    "NetworkConfig",
    "Partition",
    "SimApp",
    "SimResult",
    "Simulation",
    "sim_key",
]

GENESIS_HASH = bytes(32)
INVALID_TX_PREFIX = b"invalid:"


def sim_key(seed: int, index: int) -> Ed25519PrivateKey:
    """A deterministic Ed25519 key for validator ``index`` of simulation ``seed``."""
    return Ed25519PrivateKey.from_private_bytes(
        hashlib.sha256(f"farm-sim-key/{seed}/{index}".encode()).digest()
    )


class Behaviour(StrEnum):
    """How a simulated validator behaves."""

    HONEST = "honest"
    SILENT = "silent"  # crashed from the start: sends and processes nothing
    EQUIVOCATING_PROPOSER = "equivocating-proposer"  # different blocks to different peers
    DOUBLE_VOTER = "double-voter"  # every vote has a conflicting twin for half the peers
    BAD_SIGNATURES = "bad-signatures"  # every message it sends carries a broken signature
    INVALID_VOTER = "invalid-voter"  # proposes invalid blocks, accepts and votes for anything


@dataclass(frozen=True)
class Partition:
    """``members`` are cut off from everyone else during [start, until)."""

    members: frozenset[str]
    until: float
    start: float = 0.0

    def cuts(self, src: str, dest: str, now: float) -> bool:
        """Whether a message from ``src`` to ``dest`` sent at ``now`` crosses the cut."""
        return self.start <= now < self.until and ((src in self.members) != (dest in self.members))


@dataclass(frozen=True)
class NetworkConfig:
    """Knobs of the simulated network (times in simulated seconds)."""

    min_delay: float = 0.01
    max_delay: float = 0.5  # delays are uniform in [min_delay, max_delay] before GST
    stable_delay: float = 0.2  # Δ: the bound on delays from GST on
    gst: float = 0.0  # global stabilization time
    drop_prob: float = 0.0  # before GST
    permanent_loss: bool = False  # False: a dropped/cut message arrives after GST instead
    dup_prob: float = 0.0  # a second copy of a message, at any time
    reorder_prob: float = 0.0  # before GST: an extra delay of up to 4 * max_delay
    partitions: tuple[Partition, ...] = ()
    gossip: bool = True  # honest validators relay every message they see for the first time


class SimApp:
    """A deterministic application: blocks chain by hash, carry a few synthetic
    transactions and a log root that every validator can recompute.

    A block is valid if it extends this validator's last decided block, its root and
    size follow from its transactions, and no transaction starts with ``invalid:``.
    """

    def __init__(self, validator_id: str, initial_height: int = 1) -> None:
        self.validator_id = validator_id
        self.height = initial_height  # the height of the next block
        self.prev_hash = GENESIS_HASH
        self.log_root = GENESIS_HASH
        self.log_size = 0
        self.chain: list[Block] = []

    def build(self, height: int, txs: tuple[bytes, ...]) -> Block:
        """A block on top of this app's chain with ``txs``."""
        root = self.log_root
        for tx in txs:
            root = hashlib.sha256(root + hashlib.sha256(tx).digest()).digest()
        return Block(
            height=height,
            prev_hash=self.prev_hash,
            txs=txs,
            log_root=root,
            log_size=self.log_size + len(txs),
            proposer=self.validator_id,
        )

    def propose(self, height: int) -> Block:
        """Application.propose."""
        return self.build(height, (f"tx:{height}:{self.validator_id}".encode(),))

    def validate(self, block: Block) -> str | None:
        """Application.validate."""
        if block.height != self.height:
            return f"height {block.height}, expected {self.height}"
        if block.prev_hash != self.prev_hash:
            return "does not extend the last decided block"
        if any(tx.startswith(INVALID_TX_PREFIX) for tx in block.txs):
            return "contains an invalid transaction"
        expected = self.build(block.height, block.txs)
        if (expected.log_root, expected.log_size) != (block.log_root, block.log_size):
            return "log root or size does not follow from the transactions"
        return None

    def apply(self, block: Block) -> None:
        """Append a decided block."""
        self.chain.append(block)
        self.prev_hash = block.hash()
        self.log_root = block.log_root
        self.log_size = block.log_size
        self.height = block.height + 1


def _resign(key: Ed25519PrivateKey, msg: Message) -> Message:
    """``msg`` with a fresh, good signature by ``key`` (Byzantine nodes sign anything)."""
    return replace(msg, signature=key.sign(msg.sign_bytes()))


class _InvalidApp(SimApp):
    """The app of an INVALID_VOTER: proposes invalid blocks and accepts anything."""

    def propose(self, height: int) -> Block:
        return self.build(height, (INVALID_TX_PREFIX + f"{height}:{self.validator_id}".encode(),))

    def validate(self, block: Block) -> str | None:
        return None


@dataclass
class _Node:
    id: str
    index: int
    key: Ed25519PrivateKey
    behaviour: Behaviour
    app: SimApp
    machine: Consensus
    seen_blocks: dict[tuple[int, int], bytes] = field(default_factory=dict)
    relayed: set[bytes] = field(default_factory=set)


@dataclass(frozen=True)
class _Deliver:
    dest: str
    src: str
    msg: Message


@dataclass(frozen=True)
class _Fire:
    dest: str
    timeout: Timeout


@dataclass(frozen=True)
class _Restart:
    dest: str


@dataclass
class SimResult:
    """What happened in a run."""

    seed: int
    time: float
    events: int
    honest: tuple[str, ...]
    decisions: dict[str, dict[int, bytes]]  # honest validator → height → block hash
    decide_times: dict[str, dict[int, float]]
    stats: dict[str, ConsensusStats]
    evidence: dict[str, int]  # honest validator → equivocations it saw
    double_signs: list[tuple[str, int, int, str]]  # honest (validator, h, r, step): must be []
    restarts: int
    trace_digest: str

    def forks(self) -> dict[int, set[bytes]]:
        """Heights at which honest validators decided different blocks (must be empty)."""
        by_height: dict[int, set[bytes]] = {}
        for decided in self.decisions.values():
            for h, bh in decided.items():
                by_height.setdefault(h, set()).add(bh)
        return {h: hs for h, hs in by_height.items() if len(hs) > 1}

    def heights_decided(self) -> dict[str, int]:
        """Honest validator → number of heights it decided."""
        return {v: len(d) for v, d in self.decisions.items()}

    def all_decided(self, heights: int) -> bool:
        """Whether every honest validator decided at least ``heights`` heights."""
        return all(len(d) >= heights for d in self.decisions.values())


class Simulation:
    """N validators, one seeded random source, one event queue.

    Args:
        n: number of validators (ids ``v0`` … ``v{n-1}``, in proposer order).
        seed: the only source of randomness.
        net: network knobs.
        faults: validator index → behaviour; the others are honest.
        timeouts: the validators' timeout schedule.
        initial_height: the first height decided.
        restarts: validator index → simulated time at which it crashes and restarts at
            once: a new state machine with the same key, vote guard and application state
            (what survives on disk), and an empty message log and no locks (what does not).
    """

    def __init__(
        self,
        n: int = 4,
        *,
        seed: int = 0,
        net: NetworkConfig | None = None,
        faults: Mapping[int, Behaviour] | None = None,
        timeouts: TimeoutConfig | None = None,
        initial_height: int = 1,
        restarts: Mapping[int, float] | None = None,
    ) -> None:
        self.seed = seed
        self.net = net or NetworkConfig()
        self.rng = random.Random(seed)
        self.initial_height = initial_height
        self.now = 0.0
        faults = dict(faults or {})
        keys = [sim_key(seed, i) for i in range(n)]
        self.validators = ValidatorSet.of([(f"v{i}", k.public_key()) for i, k in enumerate(keys)])
        self.nodes: dict[str, _Node] = {}
        self._timeouts = timeouts
        self._guards: dict[str, MemoryVoteGuard] = {}
        for i, vid in enumerate(self.validators.ids):
            behaviour = faults.get(i, Behaviour.HONEST)
            app = (
                _InvalidApp(vid, initial_height)
                if behaviour is Behaviour.INVALID_VOTER
                else SimApp(vid, initial_height)
            )
            guard = self._guards[vid] = MemoryVoteGuard()
            machine = Consensus(vid, keys[i], self.validators, app, guard, timeouts=timeouts)
            self.nodes[vid] = _Node(vid, i, keys[i], behaviour, app, machine)
        self.honest = tuple(v for v, nd in self.nodes.items() if nd.behaviour is Behaviour.HONEST)
        self.decisions: dict[str, dict[int, bytes]] = {v: {} for v in self.honest}
        self.decide_times: dict[str, dict[int, float]] = {v: {} for v in self.honest}
        self._queue: list[tuple[float, int, _Deliver | _Fire | _Restart]] = []
        self._seq = 0
        self._events = 0
        self._trace = hashlib.sha256()
        self._target = 0
        self._signed: dict[tuple[str, int, int, str], bytes | None] = {}
        self.double_signs: list[tuple[str, int, int, str]] = []
        self.restarts = 0
        for i, at in (restarts or {}).items():
            self._push(at, _Restart(self.validators.ids[i]))

    # ------------------------------------------------------------------ running

    def run(self, *, heights: int, until: float) -> SimResult:
        """Run until every honest validator decided ``heights`` heights, or simulated
        time passes ``until``, or nothing is left to happen."""
        self._target = heights
        if self.now == 0.0 and not self._events:
            for node in self.nodes.values():
                if node.behaviour is not Behaviour.SILENT:
                    self._apply(node, node.machine.start(self.initial_height))
        while self._queue and not self._done(heights):
            at, _, event = self._queue[0]
            if at > until:
                break
            heapq.heappop(self._queue)
            self.now = at
            self._events += 1
            node = self.nodes[event.dest]
            if isinstance(event, _Restart):
                self._restart(node)
            elif isinstance(event, _Deliver):
                self._trace.update(f"{at:.9f}|{event.src}>{event.dest}|".encode())
                self._trace.update(type(event.msg).__name__.encode() + event.msg.signature)
                self._observe(node, event.msg)
                self._relay(node, event.src, event.msg)
                self._apply(node, node.machine.on_message(event.msg))
            else:
                self._trace.update(f"{at:.9f}|T{event.dest}|{event.timeout}".encode())
                self._apply(node, node.machine.on_timeout(event.timeout))
        return SimResult(
            seed=self.seed,
            time=self.now,
            events=self._events,
            honest=self.honest,
            decisions={v: dict(d) for v, d in self.decisions.items()},
            decide_times={v: dict(d) for v, d in self.decide_times.items()},
            stats={v: self.nodes[v].machine.stats for v in self.honest},
            evidence={v: len(self.nodes[v].machine.evidence) for v in self.honest},
            double_signs=list(self.double_signs),
            restarts=self.restarts,
            trace_digest=self._trace.hexdigest(),
        )

    def _done(self, heights: int) -> bool:
        return all(len(d) >= heights for d in self.decisions.values())

    def _restart(self, node: _Node) -> None:
        if node.behaviour is Behaviour.SILENT:
            return
        self.restarts += 1
        self._trace.update(f"{self.now:.9f}|R{node.id}".encode())
        old = node.machine
        node.machine = Consensus(
            node.id,
            node.key,
            self.validators,
            node.app,
            self._guards[node.id],
            timeouts=self._timeouts,
        )
        node.machine.stats = old.stats  # keep counting across the restart
        if node.app.height - self.initial_height < self._target:  # heights left to decide
            self._apply(node, node.machine.start(node.app.height))

    def _push(self, at: float, event: _Deliver | _Fire | _Restart) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (at, self._seq, event))

    def _apply(self, node: _Node, effects: list[Effect]) -> None:
        """Carry out a node's effects (through its behaviour)."""
        pending = list(effects)
        while pending:
            effect = pending.pop(0)
            if isinstance(effect, Broadcast):
                if node.behaviour is Behaviour.HONEST:
                    self._check_double_sign(node.id, effect.message)
                for dest, msg in self._outgoing(node, effect.message):
                    self._send(node.id, dest, msg)
            elif isinstance(effect, ScheduleTimeout):
                self._push(self.now + effect.delay_s, _Fire(node.id, effect.timeout))
            elif isinstance(effect, Decide):
                self._decided(node, effect, pending)

    def _check_double_sign(self, vid: str, msg: Message) -> None:
        step, value = (
            ("proposal", msg.block.hash())
            if isinstance(msg, Proposal)
            else (str(msg.kind), msg.block_hash)
        )
        slot = (vid, msg.height, msg.round, step)
        if self._signed.setdefault(slot, value) != value:
            self.double_signs.append(slot)

    def _decided(self, node: _Node, effect: Decide, pending: list[Effect]) -> None:
        node.app.apply(effect.block)
        if node.id in self.decisions:
            self.decisions[node.id][effect.height] = effect.block.hash()
            self.decide_times[node.id][effect.height] = self.now
        if effect.height - self.initial_height + 1 < self._target:
            pending.extend(node.machine.start(node.machine.next_height))

    # ------------------------------------------------------------------ network

    def _send(self, src: str, dest: str, msg: Message) -> None:
        net, rng, now = self.net, self.rng, self.now
        if now >= net.gst:
            for _ in range(2 if rng.random() < net.dup_prob else 1):
                at = now + rng.uniform(net.min_delay, net.stable_delay)
                self._push(at, _Deliver(dest, src, msg))
            return
        cut = next((p for p in net.partitions if p.cuts(src, dest, now)), None)
        lost = cut is not None or rng.random() < net.drop_prob
        if lost and net.permanent_loss:
            return
        delay = rng.uniform(net.min_delay, net.max_delay)
        if rng.random() < net.reorder_prob:
            delay += rng.uniform(0, 4 * net.max_delay)
        at = now + delay
        if lost:
            resume = net.gst if cut is None else min(cut.until, net.gst)
            at = max(at, resume + rng.uniform(net.min_delay, net.stable_delay))
        self._push(at, _Deliver(dest, src, msg))
        if rng.random() < net.dup_prob:
            self._push(at + rng.uniform(0, net.max_delay), _Deliver(dest, src, msg))

    # ------------------------------------------------------------------ behaviours

    def _observe(self, node: _Node, msg: Message) -> None:
        """What a Byzantine node remembers to make its attacks plausible."""
        if isinstance(msg, Proposal):
            node.seen_blocks.setdefault((msg.height, msg.round), msg.block.hash())

    def _relay(self, node: _Node, src: str, msg: Message) -> None:
        """Gossip: an honest validator forwards a message it sees for the first time, so
        that what one correct validator receives every correct validator receives."""
        if not self.net.gossip or node.behaviour is not Behaviour.HONEST:
            return
        seen = msg.signature + msg.sign_bytes()
        if seen in node.relayed:
            return
        node.relayed.add(seen)
        for dest in self.validators.ids:
            if dest not in (node.id, src, msg.sender):
                self._send(node.id, dest, msg)

    def _outgoing(self, node: _Node, msg: Message) -> list[tuple[str, Message]]:
        others = [v for v in self.validators.ids if v != node.id]
        b = node.behaviour
        if b is Behaviour.SILENT:
            return []
        if b is Behaviour.BAD_SIGNATURES:
            bad = bytes([msg.signature[0] ^ 0xFF]) + msg.signature[1:]
            return [(d, replace(msg, signature=bad)) for d in others]
        half = len(others) // 2 or 1
        if b is Behaviour.EQUIVOCATING_PROPOSER and isinstance(msg, Proposal):
            out: list[tuple[str, Message]] = []
            for i, dest in enumerate(others):
                variant = node.app.build(
                    msg.height, (*msg.block.txs, f"equivocate:{msg.round}:{i % 2}".encode())
                )
                out.append(
                    (
                        dest,
                        _resign(node.key, replace(msg, block=variant)),
                    )
                )
            if len(out) > 1:  # the first peer gets both variants: evidence to catch
                out.append((others[0], out[1][1]))
            return out
        if b is Behaviour.DOUBLE_VOTER and isinstance(msg, Vote):
            twin_hash: bytes | None
            if msg.block_hash is not None:
                twin_hash = None
            else:
                twin_hash = node.seen_blocks.get((msg.height, msg.round), self.rng.randbytes(32))
            twin = _resign(node.key, replace(msg, block_hash=twin_hash))
            # The first half gets one vote, the rest its twin; the first peer gets both.
            split: list[tuple[str, Message]] = [
                (d, msg if i < half else twin) for i, d in enumerate(others)
            ]
            return [*split, (others[0], twin)]
        if b is Behaviour.INVALID_VOTER and isinstance(msg, Vote) and msg.block_hash is None:
            # Prefer voting for whatever block it saw, valid or not, over nil.
            seen = node.seen_blocks.get((msg.height, msg.round))
            if seen is not None and msg.kind is VoteKind.PREVOTE:
                vote = _resign(node.key, replace(msg, block_hash=seen))
                return [(d, vote) for d in others]
        return [(d, msg) for d in others]
