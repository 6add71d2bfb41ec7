"""Gossip and frame dispatch: what a validator does with the frames of its peers.

Frames from peers (:mod:`ledger.network`) are handled synchronously as they arrive
(:meth:`Gossip.on_frame`), on the validator's one asyncio loop:

- consensus messages go to the state machine (through :meth:`GossipHost.deliver`)
  and, when the machine accepts them (into its log or its future-height buffer), are
  relayed once to every other peer (the paper's gossip assumption); byte-identical
  relayed copies are dropped by digest before parsing;
- transactions (gossiped in batches: those admitted in one turn of the loop share a
  frame, :meth:`Gossip.gossip_tx`) are checked and go to the mempool;
- checkpoint co-signatures go to the co-signer (:mod:`ledger.cosigning`);
- status frames tell us who is ahead.

The consensus frames of the height being decided (sent or accepted) are kept, to send
again to a peer that (re)connects and to everyone while the height is stalled
(:meth:`Gossip.replay`): Tendermint's rounds advance only on 2f+1 messages, so a
single lost vote could otherwise stall a height.

Invariants: a consensus frame is relayed at most once (its digest is remembered,
:data:`RELAY_CACHE` of them) and only once the machine accepted its message; nothing
here decides anything: the machine checks every message's signature itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

from farm.transactions import tx_id
from ledger.consensus import Effect
from ledger.errors import ConsensusError
from ledger.mempool import Mempool
from ledger.messages import Message, Proposal, message_from_json, message_kind
from ledger.metrics import NodeMetrics
from ledger.network import Network, decode_frame, encode_frame
from ledger.settings import NodeSettings
from ledger.state import LedgerState

__all__ = ["MAX_GOSSIP_BATCH", "RELAY_CACHE", "REPLAY_FRAMES", "Gossip", "GossipHost"]

log = logging.getLogger(__name__)

RELAY_CACHE = 50_000
REPLAY_FRAMES = 1024
"""Consensus frames of the current height kept to send again (see :meth:`Gossip.replay`)."""
_CONSENSUS_PREFIX = b'{"t":"c",'  # how encode_frame starts a consensus frame
MAX_GOSSIP_BATCH = 256
"""Most transactions in one gossip frame."""


class GossipHost(Protocol):
    """What gossip reads of the validator and hands messages to
    (:class:`ledger.node.Node` satisfies it)."""

    @property
    def net(self) -> Network:
        """The validator's p2p mesh."""
        ...

    @property
    def height(self) -> int:
        """The last committed height."""
        ...

    @property
    def started(self) -> bool:
        """Consensus runs for the next height."""
        ...

    @property
    def syncing(self) -> bool:
        """Catch-up is under way."""
        ...

    @property
    def last_progress(self) -> float:
        """When the last block was committed (``time.monotonic()``)."""
        ...

    @property
    def peer_heights(self) -> dict[str, int]:
        """The height each peer last said it has (updated from status frames)."""
        ...

    @property
    def state(self) -> LedgerState:
        """The application state (transactions are checked on it)."""
        ...

    @property
    def mempool(self) -> Mempool:
        """Where checked transactions wait."""
        ...

    def deliver(self, msg: Message) -> tuple[bool, list[Effect]]:
        """Hand a peer's consensus message to the machine: whether the machine took it,
        and the effects to perform."""
        ...

    def perform(self, effects: list[Effect]) -> None:
        """Carry out what one event of the machine produced."""
        ...

    def wake(self, *, now: bool = False) -> None:
        """There is work: start the next height."""
        ...

    def maybe_sync(self) -> None:
        """Fetch blocks when a peer is ahead and we are not getting there ourselves."""
        ...


class Gossip:
    """Relays, dispatches and batches one validator's frames (see the module docstring).

    Args:
        host: the validator the frames are for.
        settings: its settings (``max_tx_bytes``, ``sync_after``).
        metrics: its counters.
        on_cosig: called with the note of every co-signature frame.
    """

    def __init__(
        self,
        host: GossipHost,
        settings: NodeSettings,
        metrics: NodeMetrics,
        on_cosig: Callable[[str], None],
    ) -> None:
        self._host = host
        self.settings = settings
        self.metrics = metrics
        self._on_cosig = on_cosig
        self._relayed: OrderedDict[bytes, None] = OrderedDict()
        # Consensus frames of the current height that we sent or accepted, to send again
        # to a peer that (re)connects and to everyone while the height is stalled.
        self._height_frames: OrderedDict[bytes, bytes] = OrderedDict()
        self._last_replay = 0.0
        self._last_heard = 0.0  # when a consensus message last got through to the machine
        self._gossip: list[str] = []  # hex of admitted transactions not yet gossiped

    def forget_height(self) -> None:
        """A height was committed: its consensus frames are no longer sent again."""
        self._height_frames.clear()

    def seen(self, digest: bytes) -> bool:
        """Remember a frame digest; True if it was already there."""
        if digest in self._relayed:
            return True
        self._relayed[digest] = None
        if len(self._relayed) > RELAY_CACHE:
            self._relayed.popitem(last=False)
        return False

    def on_frame(self, peer: str, raw: bytes) -> None:
        """A frame from an authenticated peer (:data:`ledger.network.FrameHandler`)."""
        # Relayed copies of a consensus message are byte-identical: drop them before
        # parsing (a proposal can be megabytes of JSON).
        digest = None
        if raw.startswith(_CONSENSUS_PREFIX):
            digest = hashlib.sha256(raw).digest()
            if self.seen(digest):
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
                if self.seen(digest):
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
                self._host.peer_heights[peer] = h
                self._host.maybe_sync()

    def _on_consensus(self, peer: str, frame: dict[str, Any], raw: bytes, digest: bytes) -> None:
        """A consensus message: to the machine, then relayed and kept if it took it."""
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
        accepted, effects = self._host.deliver(msg)
        if accepted:
            if isinstance(msg, Proposal) and msg.height == self._host.height + 1:
                self.metrics.mark(msg.height, "proposal")
            self._last_heard = time.monotonic()
            self._host.net.broadcast(raw, exclude=(peer, msg.sender))
            self.keep_frame(msg.height, digest, raw)
        self._host.perform(effects)
        if msg.height > self._host.height + 1:
            self._host.maybe_sync()

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
            if self._host.state.index_of(tid) is not None or tid in self._host.mempool:
                continue
            if self._host.state.check(tx) is None and self._host.mempool.add(tid, tx):
                added = True
        if added:
            self._host.wake()

    def keep_frame(self, height: int, digest: bytes, raw: bytes) -> None:
        """Remember a consensus frame of the height being decided (others are not
        kept: a peer behind by a height catches up on blocks, not on votes)."""
        if height != self._host.height + 1:
            return
        self._height_frames[digest] = raw
        if len(self._height_frames) > REPLAY_FRAMES:
            self._height_frames.popitem(last=False)

    def on_peer_connected(self, peer: str) -> None:
        """A peer we send to (re)connected: it missed whatever was sent meanwhile, and
        Tendermint's rounds advance only on 2f+1 messages, so with one validator down a
        single lost vote would stall the height. Send it this height's messages again
        (the gossip the algorithm assumes); it drops those it already has by digest."""
        for raw in self._height_frames.values():
            self._host.net.send(peer, raw)

    def replay(self) -> None:
        """The height is stalled (nothing committed and no new consensus message for
        ``sync_after``): send this height's messages to every peer again (a frame can
        be lost on a live connection too, when a peer's send queue was full). A height
        that is slow but moving is left alone: a resent proposal is megabytes."""
        now = time.monotonic()
        if not self._host.started or self._host.syncing:
            return
        quiet_since = max(self._host.last_progress, self._last_heard, self._last_replay)
        if now - quiet_since < self.settings.sync_after:
            return
        self._last_replay = now
        for raw in self._height_frames.values():
            self._host.net.broadcast(raw)

    def gossip_tx(self, tx: bytes) -> None:
        """Send ``tx`` to every peer, in one frame with the others admitted meanwhile:
        the batch leaves at the end of this turn of the loop (no added delay)."""
        if not self._gossip:
            asyncio.get_running_loop().call_soon(self._flush_gossip)
        self._gossip.append(tx.hex())
        if len(self._gossip) >= MAX_GOSSIP_BATCH:
            self._flush_gossip()

    def _flush_gossip(self) -> None:
        if self._gossip:
            self._host.net.broadcast(encode_frame({"t": "txs", "txs": self._gossip}))
            self._gossip = []
