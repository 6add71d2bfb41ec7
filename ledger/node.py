"""One validator: the consensus state machine driven by the network and the clock.

Everything runs on one asyncio loop, so the state machine, the application state, the
store and the mempool are only ever touched by one piece of code at a time:

- frames from peers (:mod:`ledger.network`) are handled synchronously as they arrive:
  consensus messages go to :meth:`Consensus.on_message` and, when the machine accepts
  them (into its log or its future-height buffer), are relayed once to every other
  peer (the paper's gossip assumption); transactions (gossiped in batches: those
  admitted in one turn of the loop share a frame) are checked and go to the mempool; checkpoint
  co-signatures are checked and merged; status frames tell us who is ahead;
- ``ScheduleTimeout`` becomes ``loop.call_later``; ``Broadcast`` is queued to every
  peer (the machine has already persisted the vote through the vote guard, so a vote
  is on disk before it can leave); ``Decide`` commits the block atomically in the
  store, applies it to the state, answers the waiting submitters, co-signs the new
  checkpoint with the current time (C2SP cosignature/v1) and gossips the co-signature.

Checkpoint text: origin, size, root and one extension line committing to the set of
revoked artifacts at that size (:mod:`ledger.revoked_set`), so a node serving
artifacts can prove one is *not* revoked. A peer's co-signature (or a fetched note)
is merged only if its text is byte for byte the one this validator makes for that size.

Checkpoint freshness: a validator also re-cosigns its latest checkpoint whenever it
has not co-signed anything for ``cosign_interval`` seconds, and merges its peers'
fresher co-signatures (one per validator, the newest) into the trusted note it serves,
storing it again when the time that 2f+1 validators vouch for moves forward. So an idle
ledger's checkpoint stays fresh, and one that cannot get 2f+1 validators to co-sign
(halted, or cut off) visibly ages; clients refuse it with
:func:`ledger.checkpoint.verify_fresh_checkpoint`. The re-cosigning also re-sends a
co-signature a peer may have missed.

Idle policy (no empty blocks): after a commit the next height starts at once when
the mempool holds transactions, or as soon as a transaction or a consensus message
for that height arrives; until then the validator sits idle. Every validator hears of
every transaction (they are gossiped on admission), so all start the height within a
network delay of each other and the proposer's block carries whatever is pending then.
Transactions that arrive during a height wait for the next one, which is how blocks
grow under load without a fixed block interval.

Evidence: the machine records two validly signed, conflicting messages of one
validator (same height, round and kind) as an :class:`~ledger.consensus.Equivocation`;
after every event handed to the machine the node drains them
(:meth:`Consensus.take_evidence`) and stores each in its ledger store
(:meth:`LedgerStore.put_evidence`, deduplicated per slot and bounded per offender),
so it survives restarts and is served by ``GET /v1/evidence`` for anyone to re-check
against the genesis keys (:func:`ledger.verify.verify_equivocation`). Evidence is a
record for operators; it changes nothing in consensus (an equivocator's votes are
already counted safely, see :mod:`ledger.consensus`).

Invariants: a block is committed only with a certificate the machine assembled (or,
in catch-up, one that verifies against the genesis validators); the state is applied
only after the store has committed the block; the application state's root after a
block always equals the block's ``log_root``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from farm.errors import ConfigError
from farm.keys import KeyPair
from farm.transactions import tx_id
from ledger.block import Block, CommitCertificate, ValidatorSet, VoteKind
from ledger.checkpoint import (
    MAX_CLOCK_SKEW,
    Checkpoint,
    NoteSignature,
    SignedNote,
    cosign_checkpoint,
    cosignatures,
    parse_note,
    signature_threshold,
)
from ledger.consensus import Broadcast, Consensus, Decide, Effect, ScheduleTimeout, Timeout
from ledger.errors import CheckpointError, ConsensusError, LedgerError, StorageError
from ledger.genesis import Genesis, genesis_hash
from ledger.mempool import Mempool
from ledger.messages import Proposal, Vote, message_from_json, message_kind
from ledger.metrics import NodeMetrics, TimedGuard
from ledger.network import Network, PeerInfo, decode_frame, encode_frame
from ledger.ports import CommitInfo
from ledger.settings import NodeSettings
from ledger.state import LedgerState
from ledger.storage import LedgerStore
from ledger.vote_guard import SqliteVoteGuard

__all__ = ["Node", "note_size", "serve", "split_hostport"]

log = logging.getLogger(__name__)

RELAY_CACHE = 50_000
REPLAY_FRAMES = 1024
"""Consensus frames of the current height kept to send again (see :meth:`Node._replay`)."""
_CONSENSUS_PREFIX = b'{"t":"c",'  # how encode_frame starts a consensus frame
EARLY_COSIGS = 4_096
MAX_GOSSIP_BATCH = 256
"""Most transactions in one gossip frame."""


@dataclass
class _Cosigned:
    """The verified co-signatures of one checkpoint text: the newest per validator."""

    text: str
    sigs: dict[str, tuple[int, NoteSignature]]

    def add(self, name: str, stamp: int, sig: NoteSignature) -> bool:
        """Keep ``sig`` unless ``name`` already co-signed at ``stamp`` or later."""
        old = self.sigs.get(name)
        if old is not None and old[0] >= stamp:
            return False
        self.sigs[name] = (stamp, sig)
        return True

    def time(self, threshold: int) -> int:
        """The newest time ``threshold`` validators vouch for (0: not enough of them)."""
        times = sorted((t for t, _ in self.sigs.values()), reverse=True)
        return times[threshold - 1] if len(times) >= threshold else 0

    def render(self) -> str:
        """The signed note, signature lines in validator-name order."""
        lines = tuple(self.sigs[name][1] for name in sorted(self.sigs))
        return SignedNote(self.text, lines).render()


def note_size(note: str) -> int:
    """The tree size of a checkpoint note (no signature checked)."""
    return Checkpoint.from_body(parse_note(note).text).size


def split_hostport(value: str) -> tuple[str, int]:
    """``"host:port"`` → (host, port); raises ConfigError."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"{value!r} is not host:port")
    return host, int(port)


class _ResumingConsensus(Consensus):
    """The state machine, resuming the height it was voting in when the process died.

    A validator locks on a value exactly when it precommits it (lines 36-43). The node
    stores the locked block (:meth:`LedgerStore.set_lock`) before the precommit leaves, and
    the vote guard holds every signed vote; after a restart the machine resumes, still
    locked, in the round after the highest one the guard holds. Not in that round
    itself: its votes there died with the process (nobody re-sends them, and the guard
    refuses to sign anything else there), so it could never gather 2f+1 votes of that
    round again, and a height all validators restarted in would stall. Without the lock
    a restarted honest validator could prevote against it, which counts against safety
    like a Byzantine vote. The locked block is also the valid value, re-proposed with valid
    round -1: after a restart nobody has the old polka in memory, so a re-proposal that
    needed one would never gather prevotes; every validator locked on it prevotes it
    under line 22, the others if it is valid.
    """

    resume: tuple[int, int, int, Block | None] | None = None
    """(height, highest round signed in, locked round, locked block) to resume, if any."""

    def _reset_height_state(self) -> None:
        super()._reset_height_state()
        r = self.resume
        if r is not None and r[0] == self.height and r[2] >= 0 and r[3] is not None:
            self.locked_value = self.valid_value = r[3]
            self.locked_round = r[2]

    def _start_round(self, round: int) -> None:
        r = self.resume
        if r is not None and r[0] == self.height:
            self.resume = None
            round = max(round, r[1] + 1)
        super()._start_round(round)


def _resume_point(
    guard_path: Path, store: LedgerStore, height: int
) -> tuple[int, int, int, Block | None] | None:
    """What this validator already did at ``height`` before a restart: the highest
    round the vote guard holds, and its lock (round, block) if the store has it.

    Reads the guard's table (ledger/vote_guard.py: signed(height, round, step, value)).
    """
    import sqlite3

    if not guard_path.exists():
        return None
    try:
        db = sqlite3.connect(f"file:{guard_path}?mode=ro", uri=True)
        try:
            top = db.execute("SELECT MAX(round) FROM signed WHERE height=?", (height,)).fetchone()
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise ConfigError(f"{guard_path}: cannot read the vote guard: {exc}") from None
    if top is None or top[0] is None:
        return None
    lock = store.get_lock()
    if lock is not None and lock[0] == height:
        return (height, int(top[0]), lock[1], lock[2])
    return (height, int(top[0]), -1, None)


class Node:
    """A validator process's whole state (see the module docstring)."""

    def __init__(self, settings: NodeSettings, genesis: Genesis, key: KeyPair) -> None:
        self.settings = settings
        self.genesis = genesis
        self.chain_id = genesis.chain_id
        self.validators: ValidatorSet = genesis.validator_set()
        raw = key.private.public_key().public_bytes_raw()
        me = [v for v in genesis.validators if bytes.fromhex(v.public_key) == raw]
        if not me:
            raise ConfigError(
                f"{settings.key_path}: this key is not one of the validators of {self.chain_id}"
            )
        self.info = me[0]
        if settings.name is not None and settings.name != self.info.name:
            raise ConfigError(f"this key belongs to {self.info.name!r}, not {settings.name!r}")
        self.name = self.info.name
        self._key = key.private
        self._keys: dict[str, Ed25519PublicKey] = self.validators.keys
        self._threshold = signature_threshold(self.validators.n)

        settings.dir.mkdir(parents=True, exist_ok=True)
        self.store = LedgerStore(settings.store_path, genesis)
        self.state: LedgerState = self.store.load_state(genesis)
        self.height = self.store.height()
        last = self.store.block(self.height) if self.height > 0 else None
        self.last_hash: bytes = (
            bytes.fromhex(genesis_hash(genesis)) if last is None else last[0].hash()
        )

        self.mempool = Mempool(settings.max_mempool_txs)
        self.guard = SqliteVoteGuard(settings.guard_path)
        self.metrics = NodeMetrics()
        self.consensus = _ResumingConsensus(
            self.name,
            self._key,
            self.validators,
            self,
            TimedGuard(self.guard, self.metrics),
            timeouts=settings.timeouts(),
        )
        self.consensus.resume = _resume_point(settings.guard_path, self.store, self.height + 1)
        self._saved_lock: tuple[int, int] = (self.height + 1, -1)
        self._started = False
        self._max_seen_height = 0
        self._own_blocks: set[bytes] = set()
        self._relayed: OrderedDict[bytes, None] = OrderedDict()
        # Consensus frames of the current height that we sent or accepted, to send again
        # to a peer that (re)connects and to everyone while the height is stalled.
        self._height_frames: OrderedDict[bytes, bytes] = OrderedDict()
        self._last_replay = 0.0
        self._last_heard = 0.0  # when a consensus message last got through to the machine
        self._gossip: list[str] = []  # hex of admitted transactions not yet gossiped
        self._commit_waiters: dict[str, list[asyncio.Future[CommitInfo]]] = {}
        self._checkpoint_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._load_checkpoint()
        self.peer_heights: dict[str, int] = {}
        self.last_progress = time.monotonic()
        self.syncing = False
        self._sync_task: asyncio.Task[None] | None = None
        self._status_task: asyncio.Task[None] | None = None
        self._cosign_task: asyncio.Task[None] | None = None
        self._timers: list[asyncio.TimerHandle] = []
        self._start_handle: asyncio.TimerHandle | None = None

        self.http_addr = {v.name: v.http for v in genesis.validators}
        self.net = self._make_network()

    def _load_checkpoint(self) -> None:
        """Resume from the latest stored checkpoint and its co-signatures."""
        self._pending: dict[int, _Cosigned] = {}  # size → co-signatures, until trusted
        self._last_checkpoint: Checkpoint | None = None  # see _checkpoint
        self._early: dict[int, list[str]] = {}  # co-signatures for sizes we lack yet
        self._signed_size = -1
        self._last_cosign = time.monotonic()
        self._trusted: _Cosigned | None = None  # the checkpoint at checkpoint_size
        self._trusted_time = 0
        self.checkpoint_size = -1
        note = self.store.latest_checkpoint()
        self._latest_note: tuple[int, str] | None = None  # (size, note) as stored
        if note is not None:
            self._latest_note = (note_size(note), note)
            parsed = parse_note(note)
            self.checkpoint_size = note_size(note)
            self._trusted = _Cosigned(parsed.text, cosignatures(parsed, self._keys))
            self._trusted_time = self._trusted.time(self._threshold)

    def _make_network(self) -> Network:
        peers = []
        for v in self.genesis.validators:
            host, port = split_hostport(v.p2p)
            peers.append(PeerInfo(v.name, host, port, self._keys[v.name]))
        return Network(
            self.chain_id,
            self.name,
            self._key,
            split_hostport(self.info.p2p),
            peers,
            self._on_frame,
            reconnect_max=self.settings.reconnect_max,
            on_connected=self._on_peer_connected,
        )

    # ------------------------------------------------------------------ start-up

    async def start(self) -> None:
        """Open the p2p listener and start dialling; consensus starts on demand."""
        await self.net.start()
        loop = asyncio.get_running_loop()
        self._status_task = loop.create_task(self._status_loop())
        self._cosign_task = loop.create_task(self._cosign_loop())
        log.info(
            "%s: chain %s, height %d, log size %d",
            self.name,
            self.chain_id,
            self.height,
            self.state.size,
        )

    async def close(self) -> None:
        """Stop timers and tasks, close the network and the databases."""
        for handle in self._timers:
            handle.cancel()
        for task in (self._status_task, self._cosign_task, self._sync_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self.net.close()
        self.guard.close()
        self.store.close()

    # ------------------------------------------------------------------ Application

    def propose(self, height: int) -> Block:
        """getValue(): a batch of pending transactions that are valid, in order."""
        s = self.settings
        batch = self.mempool.batch(s.max_block_txs, s.max_block_bytes)
        txs, rejected = self.state.filter_valid(tx for _, tx in batch)
        for tx, reason in rejected:
            self._drop(tx_id(tx), reason)
        root, size = self.state.root_after(txs)
        block = Block(
            height=height,
            prev_hash=self.last_hash,
            txs=tuple(txs),
            log_root=root,
            log_size=size,
            proposer=self.name,
        )
        self._own_blocks.add(block.hash())
        log.debug("proposing height %d with %d txs", height, len(txs))
        return block

    def validate(self, block: Block) -> str | None:
        """valid(v): the block extends our chain and every transaction checks out."""
        if block.hash() in self._own_blocks:
            return None
        return self.check_block(block, self.state, self.last_hash)

    def check_block(self, block: Block, state: LedgerState, prev_hash: bytes) -> str | None:
        """Why ``block`` cannot follow ``prev_hash`` on ``state`` (None if it can)."""
        s = self.settings
        reason = None
        if block.prev_hash != prev_hash:
            reason = f"prev_hash {block.prev_hash.hex()[:16]}… is not {prev_hash.hex()[:16]}…"
        elif block.proposer not in self._keys:
            reason = f"proposer {block.proposer!r} is not a validator"
        elif len(block.txs) > s.max_block_txs:
            reason = f"{len(block.txs)} transactions, at most {s.max_block_txs}"
        elif sum(len(tx) for tx in block.txs) > s.max_block_bytes:
            reason = f"transactions larger than {s.max_block_bytes} bytes"
        else:
            reason = state.check_block(block.txs)
        if reason is not None:
            return reason
        root, size = state.root_after(block.txs)
        if size != block.log_size or root != block.log_root:
            return (
                f"log after the block is size {size} root {root.hex()[:16]}…, "
                f"the block claims {block.log_size} {block.log_root.hex()[:16]}…"
            )
        return None

    # ------------------------------------------------------------------ effects

    def _save_lock(self) -> None:
        """Store the locked block before anything that follows from the lock leaves."""
        c = self.consensus
        key = (c.height, c.locked_round)
        if c.locked_value is None or c.locked_round < 0 or key == self._saved_lock:
            return
        with self.metrics.disk():
            self.store.set_lock(c.height, c.locked_round, c.locked_value)
        self._saved_lock = key

    def _keep_evidence(self) -> None:
        """Store the evidence the machine recorded since the last call. A store that
        fails is logged, not raised: evidence is a record, and consensus must go on."""
        for ev in self.consensus.take_evidence():
            try:
                if self.store.put_evidence(ev, int(time.time())):
                    log.info(
                        "stored evidence: %s equivocated (%s) at height %d round %d",
                        ev.validator,
                        ev.kind,
                        ev.height,
                        ev.round,
                    )
            except StorageError as exc:
                log.error("cannot store evidence against %s: %s", ev.validator, exc)

    def _perform(self, effects: list[Effect]) -> None:
        """Carry out what one event of the machine produced (every event's effects
        pass here, so this is also where its evidence is stored)."""
        self._keep_evidence()
        loop = asyncio.get_running_loop()
        if effects:
            self._save_lock()
        for effect in effects:
            if isinstance(effect, Broadcast):
                raw = encode_frame({"t": "c", "m": effect.message.to_json()})
                digest = hashlib.sha256(raw).digest()
                self._seen(digest)
                self._keep_frame(effect.message.height, digest, raw)
                self.net.broadcast(raw)
                self._mark_sent(effect.message)
            elif isinstance(effect, ScheduleTimeout):
                self._timers = [t for t in self._timers if not t.cancelled()][-64:]
                self._timers.append(
                    loop.call_later(effect.delay_s, self._on_timeout, effect.timeout)
                )
            elif isinstance(effect, Decide):
                self.commit(effect.block, effect.certificate)

    def _mark_sent(self, msg: Proposal | Vote) -> None:
        """Phase times (:mod:`ledger.metrics`): our proposal, or our precommit for a
        value (we saw 2f+1 prevotes for it), left."""
        if isinstance(msg, Proposal):
            self.metrics.mark(msg.height, "proposal")
        elif msg.kind is VoteKind.PRECOMMIT and msg.block_hash is not None:
            self.metrics.mark(msg.height, "polka")

    def _on_timeout(self, timeout: Timeout) -> None:
        if timeout.height != self.height + 1:
            return  # a height catch-up has committed meanwhile
        effects = self.consensus.on_timeout(timeout)
        self.metrics.timeout(str(timeout.kind), bool(effects))
        self._perform(effects)

    def _start_height(self) -> None:
        """Start consensus for the next height unless it runs already."""
        if self._start_handle is not None:
            self._start_handle.cancel()
            self._start_handle = None
        if self._started or self.syncing:
            return
        self._started = True
        self.metrics.mark(self.height + 1, "start")
        self._perform(self.consensus.start(self.height + 1))

    def _wake(self, *, now: bool = False) -> None:
        """There is work: start the next height (after ``batch_wait`` unless ``now``)."""
        if self._started or self.syncing or self._start_handle is not None:
            return
        wait = self.settings.batch_wait
        if now or wait <= 0:
            self._start_height()
        else:
            self._start_handle = asyncio.get_running_loop().call_later(wait, self._start_height)

    # ------------------------------------------------------------------ commit

    def commit(self, block: Block, cert: CommitCertificate) -> None:
        """Make ``block`` final: store, apply, answer waiters, co-sign, go on.

        A block for a height already committed (by catch-up) is ignored.
        """
        if block.height != self.height + 1:
            if block.height <= self.height:
                return
            raise ConsensusError(f"cannot commit height {block.height} on {self.height}")
        first = self.state.size
        self.metrics.decided(block.height, cert.round, len(block.txs), block.log_size)
        summaries = [self.state.summary(tx) for tx in block.txs]
        with self.metrics.disk():
            self.store.commit_block(block, cert, first, summaries)
        ids = []
        for tx in block.txs:
            tid = tx_id(tx)
            index = self.state.apply(tx)
            ids.append((tid, index))
        if self.state.root != block.log_root:  # cannot happen: validate() checked it
            raise ConsensusError(f"state diverged from block {block.height}'s log root")
        self.height = block.height
        self.last_hash = block.hash()
        self._own_blocks.clear()
        self._height_frames.clear()
        self.mempool.remove(t for t, _ in ids)
        for tid, index in ids:
            for fut in self._commit_waiters.pop(tid, []):
                if not fut.done():
                    fut.set_result(CommitInfo(index, block.height))
        self._started = False
        self.last_progress = time.monotonic()
        self.metrics.mark(block.height, "stored")
        if block.height % 64 == 0:  # each prune is an fsync: not every height
            with contextlib.suppress(LedgerError):
                self.guard.prune(block.height - 2)
        log.debug("committed height %d: %d txs, log size %d", block.height, len(ids), first)
        self._cosign()
        if len(self.mempool) or self._max_seen_height > self.height:
            self._wake(now=self._max_seen_height > self.height)

    def _drop(self, tid: str, reason: str) -> None:
        """A pending transaction turned invalid: forget it and tell its submitters."""
        self.mempool.remove([tid])
        for fut in self._commit_waiters.pop(tid, []):
            if not fut.done():
                fut.set_exception(LedgerError(reason))

    # ------------------------------------------------------------------ checkpoints

    def _cosign(self, *, refresh: bool = False) -> None:
        """Co-sign our latest checkpoint with the current time and gossip it: after a
        commit (a size not signed yet), or with ``refresh`` to vouch again that it is
        still the latest."""
        size = self.state.size
        if size == 0 or (size <= self._signed_size and not refresh):
            return
        first_time = size > self._signed_size
        self._signed_size = size
        self._last_cosign = time.monotonic()
        checkpoint = self._checkpoint(size)
        stamp = int(time.time())
        note = cosign_checkpoint(checkpoint, self.name, self._key, stamp)
        self._add_cosig(size, checkpoint.body(), self.name, stamp, parse_note(note).signatures[0])
        self.net.broadcast(encode_frame({"t": "cosig", "note": note}))
        if first_time:
            for early in self._early.pop(size, []):
                self._on_cosig(early)
            for s in [s for s in self._early if s < size]:
                del self._early[s]

    def _checkpoint(self, size: int) -> Checkpoint:
        """The checkpoint of our log at ``size``: its root and the revoked set it
        commits to (:mod:`ledger.revoked_set`); every honest validator makes the same.
        The log is append-only, so the checkpoint of a size is built once: the last
        one is kept (each peer's co-signature of it is compared with it)."""
        last = self._last_checkpoint
        if last is not None and last.size == size:
            return last
        revoked = self.state.revoked_set(size)
        cp = Checkpoint(self.chain_id, size, self.state.log.root(size), (revoked.extension(),))
        self._last_checkpoint = cp
        return cp

    async def _cosign_loop(self) -> None:
        """Re-cosign whenever nothing was co-signed for ``cosign_interval`` seconds."""
        interval = self.settings.cosign_interval
        while True:
            due = self._last_cosign + interval - time.monotonic()
            if due > 0:
                await asyncio.sleep(due)
                continue
            self._cosign(refresh=True)
            self._last_cosign = time.monotonic()

    def _on_cosig(self, note: str) -> None:
        try:
            parsed = parse_note(note)
            cp = Checkpoint.from_body(parsed.text)
        except CheckpointError as exc:
            log.info("malformed co-signature: %s", exc)
            return
        if cp.origin != self.chain_id or cp.size < self.checkpoint_size:
            return
        if cp.size > self.state.size:
            waiting = self._early.get(cp.size, [])
            if len(self._early) < EARLY_COSIGS and len(waiting) < 2 * self.validators.n:
                self._early.setdefault(cp.size, waiting).append(note)
            return
        mine = self._checkpoint(cp.size)
        if cp.root_hash != mine.root_hash:
            log.warning("co-signature for size %d with a root that is not ours", cp.size)
            return
        if parsed.text != mine.body():
            # Same root, other text (extension lines): merged with ours it would be a
            # signature that does not verify over the note it sits in.
            log.warning("co-signature for size %d of a text that is not ours", cp.size)
            return
        self._on_own_root_cosig(cp.size, parsed)

    def _on_own_root_cosig(self, size: int, parsed: SignedNote) -> None:
        """A peer's co-signature of our own checkpoint at ``size``: merge it if it is
        one valid, not future-dated cosignature/v1 by a validator."""
        if len(parsed.signatures) != 1:
            return  # peers send their own signature only
        found = cosignatures(parsed, self._keys)
        if len(found) != 1:
            return
        name, (stamp, sig) = found.popitem()
        if stamp > time.time() + MAX_CLOCK_SKEW:
            log.info("co-signature by %s dated %d s ahead: ignored", name, stamp - time.time())
            return
        self._add_cosig(size, parsed.text, name, stamp, sig)

    def _add_cosig(self, size: int, text: str, name: str, stamp: int, sig: NoteSignature) -> None:
        """Merge a verified co-signature of the checkpoint ``text`` at ``size``; store
        the note once 2f+1 distinct validators signed it, and again whenever fresher
        co-signatures advance the time 2f+1 of them vouch for."""
        trusted = self._trusted
        if size == self.checkpoint_size and trusted is not None:
            if trusted.add(name, stamp, sig):
                when = trusted.time(self._threshold)
                if when > self._trusted_time:
                    self._trusted_time = when
                    self._put_checkpoint(size, trusted.render())
            return
        if size < self.checkpoint_size:
            return
        entry = self._pending.setdefault(size, _Cosigned(text, {}))
        entry.add(name, stamp, sig)
        if len(entry.sigs) >= self._threshold:
            self._trust(size, entry)
        while len(self._pending) > 256:
            del self._pending[min(self._pending)]

    def _put_checkpoint(self, size: int, note: str) -> None:
        """Store the signed note for ``size`` (the latest) and keep it at hand."""
        with self.metrics.disk():
            self.store.put_checkpoint(size, note)
        if self._latest_note is None or size >= self._latest_note[0]:
            self._latest_note = (size, note)

    def latest_note(self) -> tuple[int, str] | None:
        """(tree size, signed note) of the latest stored checkpoint, if any."""
        return self._latest_note

    def _trust(self, size: int, entry: _Cosigned) -> None:
        """``entry`` has 2f+1 co-signatures: store it as the latest checkpoint."""
        self._put_checkpoint(size, entry.render())
        self.checkpoint_size = size
        self.metrics.checkpoint(size)
        self._trusted = entry
        self._trusted_time = entry.time(self._threshold)
        for s in [s for s in self._pending if s <= size]:
            del self._pending[s]
        waiting = self._checkpoint_waiters
        self._checkpoint_waiters = [(s, f) for s, f in waiting if s > size]
        for s, fut in waiting:
            if s <= size and not fut.done():
                fut.set_result(None)

    def store_checkpoint(self, note: str) -> bool:
        """Keep a trusted checkpoint fetched from a peer if it matches our log (or its
        fresher co-signatures, for the checkpoint we already trust)."""
        parsed = parse_note(note)
        cp = Checkpoint.from_body(parsed.text)
        if cp.origin != self.chain_id:
            return False
        if cp.size < self.checkpoint_size or cp.size > self.state.size:
            return False
        if parsed.text != self._checkpoint(cp.size).body():
            return False  # another root, or another revoked set, than ours at that size
        found = cosignatures(parsed, self._keys)
        if len(found) < self._threshold and cp.size > self.checkpoint_size:
            return False
        before = (self.checkpoint_size, self._trusted_time)
        for name, (stamp, sig) in found.items():
            if stamp <= time.time() + MAX_CLOCK_SKEW:
                self._add_cosig(cp.size, parsed.text, name, stamp, sig)
        return (self.checkpoint_size, self._trusted_time) != before

    async def wait_checkpoint(self, size: int, timeout: float) -> None:
        """Wait until a co-signed checkpoint covers ``size`` entries (or time out)."""
        if self.checkpoint_size >= size:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._checkpoint_waiters.append((size, fut))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(fut, timeout)

    # ------------------------------------------------------------------ network input

    def _seen(self, digest: bytes) -> bool:
        """Remember a frame digest; True if it was already there."""
        if digest in self._relayed:
            return True
        self._relayed[digest] = None
        if len(self._relayed) > RELAY_CACHE:
            self._relayed.popitem(last=False)
        return False

    def _on_frame(self, peer: str, raw: bytes) -> None:
        # Relayed copies of a consensus message are byte-identical: drop them before
        # parsing (a proposal can be megabytes of JSON).
        digest = None
        if raw.startswith(_CONSENSUS_PREFIX):
            digest = hashlib.sha256(raw).digest()
            if self._seen(digest):
                self.metrics.frame_in("c-dup", len(raw))
                return
        try:
            frame = decode_frame(raw)
        except ValueError as exc:
            log.info("bad frame from %s: %s", peer, exc)
            return
        kind = frame["t"]
        if kind == "c":
            if digest is None:
                digest = hashlib.sha256(raw).digest()
                if self._seen(digest):
                    self.metrics.frame_in("c-dup", len(raw))
                    return
            self.metrics.frame_in("c", len(raw))
            self._on_consensus(peer, frame, raw, digest)
            return
        self.metrics.frame_in(str(kind), len(raw))
        if kind == "txs":
            self._on_txs_frame(frame)
        elif kind == "cosig":
            note = frame.get("note")
            if isinstance(note, str):
                self._on_cosig(note)
        elif kind == "status":
            h = frame.get("height")
            if isinstance(h, int):
                self.peer_heights[peer] = h
                self._maybe_sync()

    def _on_consensus(self, peer: str, frame: dict[str, Any], raw: bytes, digest: bytes) -> None:
        try:
            msg = message_from_json(frame["m"])
        except (ConsensusError, KeyError, TypeError) as exc:
            log.info("bad consensus message from %s: %s", peer, exc)
            return
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s h%d r%d from %s via %s",
                message_kind(msg),
                msg.height,
                msg.round,
                msg.sender,
                peer,
            )
        self._max_seen_height = max(self._max_seen_height, msg.height)
        if msg.height == self.height + 1 and not self._started:
            self._wake(now=True)
        stats = self.consensus.stats
        before = stats.accepted + stats.buffered
        effects = self.consensus.on_message(msg)
        if stats.accepted + stats.buffered > before:
            if isinstance(msg, Proposal) and msg.height == self.height + 1:
                self.metrics.mark(msg.height, "proposal")
            self._last_heard = time.monotonic()
            self.net.broadcast(raw, exclude=(peer, msg.sender))
            self._keep_frame(msg.height, digest, raw)
        self._perform(effects)
        if msg.height > self.height + 1:
            self._maybe_sync()

    def _on_txs_frame(self, frame: dict[str, Any]) -> None:
        """Transactions a peer admitted: check each on our state, keep the valid ones."""
        batch = frame.get("txs")
        if not isinstance(batch, list) or len(batch) > MAX_GOSSIP_BATCH:
            return
        added = False
        for hexed in batch:
            if not isinstance(hexed, str) or len(hexed) > 2 * self.settings.max_tx_bytes:
                continue
            try:
                tx = bytes.fromhex(hexed)
            except ValueError:
                continue
            tid = tx_id(tx)
            if self.state.index_of(tid) is not None or tid in self.mempool:
                continue
            if self.state.check(tx) is None and self.mempool.add(tid, tx):
                added = True
        if added:
            self._wake()

    def _keep_frame(self, height: int, digest: bytes, raw: bytes) -> None:
        """Remember a consensus frame of the height being decided (others are not
        kept: a peer behind by a height catches up on blocks, not on votes)."""
        if height != self.height + 1:
            return
        self._height_frames[digest] = raw
        if len(self._height_frames) > REPLAY_FRAMES:
            self._height_frames.popitem(last=False)

    def _on_peer_connected(self, peer: str) -> None:
        """A peer we send to (re)connected: it missed whatever was sent meanwhile, and
        Tendermint's rounds advance only on 2f+1 messages, so with one validator down a
        single lost vote would stall the height. Send it this height's messages again
        (the gossip the algorithm assumes); it drops those it already has by digest."""
        for raw in self._height_frames.values():
            self.net.send(peer, raw)

    def _replay(self) -> None:
        """The height is stalled (nothing committed and no new consensus message for
        ``sync_after``): send this height's messages to every peer again (a frame can
        be lost on a live connection too, when a peer's send queue was full). A height
        that is slow but moving is left alone: a resent proposal is megabytes."""
        now = time.monotonic()
        if not self._started or self.syncing:
            return
        quiet_since = max(self.last_progress, self._last_heard, self._last_replay)
        if now - quiet_since < self.settings.sync_after:
            return
        self._last_replay = now
        for raw in self._height_frames.values():
            self.net.broadcast(raw)

    def _gossip_tx(self, tx: bytes) -> None:
        """Send ``tx`` to every peer, in one frame with the others admitted meanwhile:
        the batch leaves at the end of this turn of the loop (no added delay)."""
        if not self._gossip:
            asyncio.get_running_loop().call_soon(self._flush_gossip)
        self._gossip.append(tx.hex())
        if len(self._gossip) >= MAX_GOSSIP_BATCH:
            self._flush_gossip()

    def _flush_gossip(self) -> None:
        if self._gossip:
            self.net.broadcast(encode_frame({"t": "txs", "txs": self._gossip}))
            self._gossip = []

    # ------------------------------------------------------------------ submission

    def lookup(self, tid: str) -> CommitInfo | None:
        """Where a committed transaction is, or None."""
        index = self.state.index_of(tid)
        if index is None:
            return None
        return CommitInfo(index, self.height_of(index))

    def height_of(self, index: int) -> int:
        """The height of the block holding log entry ``index`` (0 if unknown)."""
        return self.store.entry_height(index) or 0

    def submit(self, tx: bytes) -> tuple[str, asyncio.Future[CommitInfo]]:
        """Admit a checked transaction: mempool, gossip, and a future for its commit.

        Raises:
            LedgerError: the mempool is full.
        """
        tid = tx_id(tx)
        fut: asyncio.Future[CommitInfo] = asyncio.get_running_loop().create_future()
        done = self.lookup(tid)
        if done is not None:
            fut.set_result(done)
            return tid, fut
        if tid not in self.mempool:
            if not self.mempool.add(tid, tx):
                raise LedgerError("the mempool is full; try again later")
            self._gossip_tx(tx)
        self._commit_waiters.setdefault(tid, []).append(fut)
        self._wake()
        return tid, fut

    # ------------------------------------------------------------------ catch-up

    async def _status_loop(self) -> None:
        while True:
            self.net.broadcast(
                encode_frame({"t": "status", "height": self.height, "size": self.state.size})
            )
            self._maybe_sync()
            self._replay()
            await asyncio.sleep(self.settings.status_interval)

    def _maybe_sync(self) -> None:
        """Fetch blocks when a peer is ahead and we are not getting there ourselves."""
        if self.syncing:
            return
        best = max(self.peer_heights.values(), default=0)
        if best <= self.height:
            return
        stalled = time.monotonic() - self.last_progress > self.settings.sync_after
        if best >= self.height + 2 or stalled:
            from ledger.sync import catch_up

            self.syncing = True
            self._sync_task = asyncio.get_running_loop().create_task(catch_up(self))

    def after_sync(self) -> None:
        """Called by catch-up when it is done: join consensus at the next height."""
        self.syncing = False
        if len(self.mempool) or self._max_seen_height > self.height:
            self._wake(now=True)

    def metrics_snapshot(self, since: int = 0) -> dict[str, Any]:
        """What GET /v1/metrics shows (:meth:`ledger.metrics.NodeMetrics.snapshot`)."""
        return self.metrics.snapshot(
            frames_out=self.net.frames_sent, bytes_out=self.net.bytes_sent, since=since
        )

    def status(self) -> dict[str, Any]:
        """What GET /v1/status shows."""
        return {
            "name": self.name,
            "chain_id": self.chain_id,
            "height": self.height,
            "size": self.state.size,
            "root": self.state.root.hex(),
            "checkpoint_size": max(self.checkpoint_size, 0),
            "round": self.consensus.round,
            "mempool": len(self.mempool),
            "peers": self.net.connected(),
            "syncing": self.syncing,
            "evidence": self.store.evidence_count(),
        }


def _lock_dir(path: Path) -> IO[bytes]:
    """Hold an exclusive lock on the validator's directory for the process's life.

    Raises:
        ConfigError: another process already runs a validator from ``path``.
    """
    import fcntl

    handle = (path / "lock").open("ab")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise ConfigError(f"{path}: another validator process is running from here") from None
    return handle


GC_THRESHOLDS = (50_000, 20, 100)
"""Cyclic garbage collector thresholds of a validator process (CPython's are 700, 10,
10): checking a transaction allocates hundreds of short-lived containers (parsed JSON,
pydantic models), so at the defaults a young collection runs every transaction or
two and the collector took about 8% of the CPU of validation; these thresholds make
it a few percent. Little that the hot path allocates is cyclic, so memory is not held
noticeably longer."""


def _tune_gc() -> None:
    """Move what start-up built (the replayed state) out of the collector's sight and
    collect less often (:data:`GC_THRESHOLDS`)."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def serve(settings: NodeSettings) -> None:
    """Run one validator until SIGTERM or SIGINT, then shut down cleanly.

    Raises:
        ConfigError / SigningKeyError: a missing key, a genesis that does not name it,
            a store of another genesis, an address in use.
    """
    import signal

    from farm.keys import load_key
    from ledger.genesis import load_genesis
    from ledger.http import HttpServer

    genesis = load_genesis(settings.genesis)
    if not settings.key_path.exists():
        raise ConfigError(
            f"{settings.key_path}: no validator key there (make one with `farm ledger init`)"
        )
    lock = _lock_dir(settings.dir)
    node = Node(settings, genesis, load_key(settings.key_path))
    _tune_gc()
    node.metrics.watch_gc()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    http: HttpServer | None = None
    try:
        host, port = split_hostport(node.info.http)
        http = HttpServer(node, host, port)
        await node.start()
        http.start()
        log.info("%s: p2p %s, http %s", node.name, node.info.p2p, node.info.http)
        await stop.wait()
        log.info("%s: shutting down at height %d", node.name, node.height)
    finally:
        if http is not None:
            await http.close()
        await node.close()
        lock.close()
