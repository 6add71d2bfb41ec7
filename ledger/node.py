"""One validator: the consensus state machine driven by the network and the clock.

Everything runs on one asyncio loop, so the state machine, the application state, the
store and the mempool are only ever touched by one piece of code at a time:

- frames from peers (:mod:`ledger.network`) are handled synchronously as they arrive
  (:mod:`ledger.gossip`): consensus messages go to :meth:`Consensus.on_message` and,
  when the machine accepts them (into its log or its future-height buffer), are
  relayed once to every other peer (the paper's gossip assumption); transactions
  (gossiped in batches: those admitted in one turn of the loop share a frame) are
  checked and go to the mempool; checkpoint co-signatures are checked and merged
  (:mod:`ledger.cosigning`); status frames tell us who is ahead;
- ``ScheduleTimeout`` becomes ``loop.call_later``; ``Broadcast`` is queued to every
  peer (the machine has already persisted the vote through the vote guard, so a vote
  is on disk before it can leave); ``Decide`` commits the block atomically in the
  store, applies it to the state, answers the waiting submitters, co-signs the new
  checkpoint with the current time (C2SP cosignature/v1) and gossips the co-signature.

Checkpoint text and freshness (re-cosigning an idle ledger's latest checkpoint,
merging peers' fresher co-signatures): see :mod:`ledger.cosigning`. Process set-up
(directory lock, garbage collector, :func:`ledger.process.serve`): see
:mod:`ledger.process`.

The node itself is the wiring: it owns the store, the state, the mempool, the vote
guard, the machine and the network, hands frames to its :class:`~ledger.gossip.Gossip`
and checkpoints to its :class:`~ledger.cosigning.Cosigner`, and answers the HTTP layer
and catch-up (:mod:`ledger.ports`).

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
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from farm.errors import ConfigError
from farm.health import Check, validator_checks
from farm.keys import KeyPair
from farm.transactions import tx_id
from ledger.block import Block, CommitCertificate, ValidatorSet, VoteKind
from ledger.consensus import Broadcast, Consensus, Decide, Effect, ScheduleTimeout, Timeout
from ledger.cosigning import Cosigner
from ledger.errors import ConsensusError, LedgerError, StorageError
from ledger.genesis import Genesis, genesis_hash
from ledger.gossip import Gossip
from ledger.mempool import Mempool
from ledger.messages import Message, Proposal, Vote
from ledger.metrics import NodeMetrics, TimedGuard
from ledger.network import Network, PeerInfo, encode_frame, split_hostport
from ledger.ports import CommitInfo
from ledger.settings import NodeSettings
from ledger.state import LedgerState
from ledger.storage import LedgerStore
from ledger.vote_guard import SqliteVoteGuard

__all__ = ["Node"]

log = logging.getLogger(__name__)


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
        self._commit_waiters: dict[str, list[asyncio.Future[CommitInfo]]] = {}
        self.cosigner = Cosigner(
            name=self.name,
            key=self._key,
            validators=self.validators,
            chain_id=self.chain_id,
            store=self.store,
            state=self.state,
            metrics=self.metrics,
            broadcast=self._broadcast,
            cosign_interval=settings.cosign_interval,
        )
        self.gossip = Gossip(self, settings, self.metrics, self.cosigner.on_cosig)
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

    def _make_network(self) -> Network:
        peers = []
        for v in self.genesis.validators:
            host, port = split_hostport(v.p2p)
            peers.append(PeerInfo(v.name, host, port, self._keys[v.name]))
        return Network(
            self.chain_id,
            self.name,
            self._key,
            self.settings.listen(self.info.p2p),
            peers,
            self.gossip.on_frame,
            reconnect_max=self.settings.reconnect_max,
            on_connected=self.gossip.on_peer_connected,
            peer_timeout=self.settings.peer_timeout,
        )

    def _broadcast(self, raw: bytes) -> None:
        """Send one frame to every peer (the co-signer's way out)."""
        self.net.broadcast(raw)

    # ------------------------------------------------------------------ start-up

    async def start(self) -> None:
        """Open the p2p listener and start dialling; consensus starts on demand."""
        await self.net.start()
        loop = asyncio.get_running_loop()
        self._status_task = loop.create_task(self._status_loop())
        self._cosign_task = loop.create_task(self.cosigner.cosign_loop())
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

    def perform(self, effects: list[Effect]) -> None:
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
                self.gossip.seen(digest)
                self.gossip.keep_frame(effect.message.height, digest, raw)
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
        self.perform(effects)

    def _start_height(self) -> None:
        """Start consensus for the next height unless it runs already."""
        if self._start_handle is not None:
            self._start_handle.cancel()
            self._start_handle = None
        if self._started or self.syncing:
            return
        self._started = True
        self.metrics.mark(self.height + 1, "start")
        self.perform(self.consensus.start(self.height + 1))

    def wake(self, *, now: bool = False) -> None:
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
        self.gossip.forget_height()
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
        self.cosigner.cosign()
        if len(self.mempool) or self._max_seen_height > self.height:
            self.wake(now=self._max_seen_height > self.height)

    def _drop(self, tid: str, reason: str) -> None:
        """A pending transaction turned invalid: forget it and tell its submitters."""
        self.mempool.remove([tid])
        for fut in self._commit_waiters.pop(tid, []):
            if not fut.done():
                fut.set_exception(LedgerError(reason))

    # ------------------------------------------------------------------ checkpoints

    @property
    def checkpoint_size(self) -> int:
        """The size of the latest trusted checkpoint (-1: none yet)."""
        return self.cosigner.checkpoint_size

    def latest_note(self) -> tuple[int, str] | None:
        """(tree size, signed note) of the latest stored checkpoint, if any."""
        return self.cosigner.latest_note()

    @property
    def checkpoint_time(self) -> int:
        """When 2f+1 validators last vouched for the trusted checkpoint (0: none)."""
        return self.cosigner.trusted_time

    def store_checkpoint(self, note: str) -> bool:
        """Keep a trusted checkpoint fetched from a peer if it matches our log (or its
        fresher co-signatures, for the checkpoint we already trust)."""
        return self.cosigner.store_checkpoint(note)

    async def wait_checkpoint(self, size: int, timeout: float) -> None:
        """Wait until a co-signed checkpoint covers ``size`` entries (or time out)."""
        await self.cosigner.wait_checkpoint(size, timeout)

    # ------------------------------------------------------------------ network input

    @property
    def started(self) -> bool:
        """Consensus runs for the next height."""
        return self._started

    def deliver(self, msg: Message) -> tuple[bool, list[Effect]]:
        """Hand a peer's consensus message to the machine (:mod:`ledger.gossip` calls
        this): whether the machine accepted it (into its log or its future-height
        buffer), and the effects to perform."""
        self._max_seen_height = max(self._max_seen_height, msg.height)
        if msg.height == self.height + 1 and not self._started:
            self.wake(now=True)
        stats = self.consensus.stats
        before = stats.accepted + stats.buffered
        effects = self.consensus.on_message(msg)
        return stats.accepted + stats.buffered > before, effects

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
            self.gossip.gossip_tx(tx)
        self._commit_waiters.setdefault(tid, []).append(fut)
        self.wake()
        return tid, fut

    # ------------------------------------------------------------------ catch-up

    async def _status_loop(self) -> None:
        while True:
            self.net.broadcast(
                encode_frame({"t": "status", "height": self.height, "size": self.state.size})
            )
            self.maybe_sync()
            self.gossip.replay()
            await asyncio.sleep(self.settings.status_interval)

    def maybe_sync(self) -> None:
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
            self.wake(now=True)

    def metrics_snapshot(self, since: int = 0) -> dict[str, Any]:
        """What GET /v1/metrics shows (:meth:`ledger.metrics.NodeMetrics.snapshot`)."""
        return self.metrics.snapshot(
            frames_out=self.net.frames_sent, bytes_out=self.net.bytes_sent, since=since
        )

    def readiness(self) -> list[Check]:
        """What GET /readyz checks: caught up, and 2f peers connected."""
        return validator_checks(
            height=self.height,
            syncing=self.syncing,
            peer_heights=self.peer_heights,
            connected=len(self.net.connected()),
            validators=self.validators.n,
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
