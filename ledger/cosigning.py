"""Checkpoint co-signing: one validator's half of the co-signed checkpoint.

After every commit the validator co-signs the new checkpoint with the current time
(C2SP cosignature/v1) and gossips the co-signature; it merges its peers'
co-signatures and stores the note once 2f+1 distinct validators signed it
(:class:`Cosigner`, owned by :class:`ledger.node.Node`).

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
:func:`farm.checkpoint.verify_fresh_checkpoint`. The re-cosigning also re-sends a
co-signature a peer may have missed.

Invariants: a note is stored as the latest checkpoint only with 2f+1 valid
co-signatures of genesis validators over exactly the text this validator makes for
that size; co-signatures dated beyond :data:`~farm.checkpoint.MAX_CLOCK_SKEW` are
ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from farm.checkpoint import (
    MAX_CLOCK_SKEW,
    Checkpoint,
    NoteSignature,
    SignedNote,
    cosign_checkpoint,
    cosignatures,
    parse_note,
    signature_threshold,
)
from ledger.block import ValidatorSet
from ledger.errors import CheckpointError
from ledger.metrics import NodeMetrics
from ledger.network import encode_frame
from ledger.state import LedgerState
from ledger.storage import LedgerStore

__all__ = ["EARLY_COSIGS", "Cosigner", "note_size"]

log = logging.getLogger(__name__)

EARLY_COSIGS = 4_096


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


class Cosigner:
    """Co-signs this validator's checkpoints and gathers its peers' co-signatures
    (see the module docstring).

    Args:
        name: this validator's name (the key name of its co-signatures).
        key: its Ed25519 key (the one genesis names).
        validators: the genesis validators (whose co-signatures count).
        chain_id: the checkpoints' origin.
        store: where trusted notes are stored (and the latest one is resumed from).
        state: the application state whose log is checkpointed (read only).
        metrics: the validator's counters.
        broadcast: sends a frame to every peer.
        cosign_interval: re-cosign after this many seconds without co-signing.
    """

    def __init__(
        self,
        *,
        name: str,
        key: Ed25519PrivateKey,
        validators: ValidatorSet,
        chain_id: str,
        store: LedgerStore,
        state: LedgerState,
        metrics: NodeMetrics,
        broadcast: Callable[[bytes], None],
        cosign_interval: float,
    ) -> None:
        self.name = name
        self._key = key
        self.validators = validators
        self._keys = validators.keys
        self._threshold = signature_threshold(validators.n)
        self.chain_id = chain_id
        self.store = store
        self.state = state
        self.metrics = metrics
        self._broadcast = broadcast
        self._cosign_interval = cosign_interval
        self._checkpoint_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._load_checkpoint()

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

    def cosign(self, *, refresh: bool = False) -> None:
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
        self._broadcast(encode_frame({"t": "cosig", "note": note}))
        if first_time:
            for early in self._early.pop(size, []):
                self.on_cosig(early)
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

    async def cosign_loop(self) -> None:
        """Re-cosign whenever nothing was co-signed for ``cosign_interval`` seconds."""
        interval = self._cosign_interval
        while True:
            due = self._last_cosign + interval - time.monotonic()
            if due > 0:
                await asyncio.sleep(due)
                continue
            self.cosign(refresh=True)
            self._last_cosign = time.monotonic()

    def on_cosig(self, note: str) -> None:
        """A co-signature gossiped by a peer: merged if it is of our own checkpoint text
        at that size, kept for later if that size is ahead of our log."""
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

    @property
    def trusted_time(self) -> int:
        """The time (Unix seconds) 2f+1 validators vouch for in the trusted checkpoint
        (0: none yet); what a client's freshness check reads (``/metrics``)."""
        return self._trusted_time

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
