"""Follow the ledger as a light but complete replica, trusting only the genesis.

Each poll asks the validators' HTTP APIs (in turn; one that is down or lies is logged
and skipped) for the blocks after ours and checks every one of them exactly as a
catching-up validator does (:mod:`ledger.sync`):

1. its commit certificate carries 2f+1 valid precommit signatures of the *genesis*
   validators for exactly that height and block hash;
2. it extends our chain (its ``prev_hash`` is our last block's hash, block 1 the
   genesis hash) and its proposer is a validator;
3. every transaction is valid on our own replicated state (the ledger's deterministic
   state machine, :class:`ledger.state.LedgerState`: signatures, quorum, enrolled
   builders, revocations) and applying them gives the block's log size and root.

Only then is the block stored (:class:`ledger.storage.LedgerStore`, SQLite in WAL
mode: a restart resumes from the last stored block) and applied. Then the latest
co-signed checkpoint is fetched from each validator and kept if 2f+1 genesis
validators signed it, its root is our own log's root at that size, and the revoked set
it commits to (its ``farm-revoked/v1`` line, :mod:`ledger.revoked_set`) is our own
state's at that size, so that every absence proof the node serves against it verifies;
for the same size, a note whose 2f+1 cosignatures are newer replaces the kept one
(readers refuse a stale checkpoint).

:func:`check_block` is pure; :class:`Follower` does the I/O.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

import httpx

from api.distribution.errors import FollowError
from farm.checkpoint import (
    Checkpoint,
    cosigned_time,
    signature_threshold,
    verify_checkpoint,
)
from ledger.block import Block, CommitCertificate, ValidatorSet, verify_commit_certificate
from ledger.errors import LedgerError
from ledger.genesis import Genesis
from ledger.revoked_set import commitment_of
from ledger.state import LedgerState
from ledger.storage import LedgerStore, certificate_from_json

__all__ = ["BATCH", "Follower", "check_block", "check_checkpoint"]

log = logging.getLogger(__name__)

BATCH = 64
"""Blocks asked for per request (the validators' page limit)."""


def check_block(
    block: Block,
    cert: CommitCertificate,
    *,
    height: int,
    prev_hash: bytes,
    validators: ValidatorSet,
    state: LedgerState,
) -> None:
    """Raise :class:`FollowError` unless ``block`` (with ``cert``) may follow a chain of
    ``height`` blocks ending in ``prev_hash`` whose application state is ``state``. Pure."""
    if block.height != height + 1:
        raise FollowError(f"got block {block.height}, wanted {height + 1}")
    try:
        verify_commit_certificate(cert, block.hash(), validators.keys, height=block.height)
    except LedgerError as exc:
        raise FollowError(f"block {block.height}: {exc}") from None
    if block.prev_hash != prev_hash:
        raise FollowError(
            f"block {block.height} names previous block {block.prev_hash.hex()[:16]}…, "
            f"ours is {prev_hash.hex()[:16]}…"
        )
    if block.proposer not in validators.keys:
        raise FollowError(f"block {block.height}: proposer {block.proposer!r} is not a validator")
    reason = state.validate_block(block)
    if reason is not None:
        raise FollowError(f"block {block.height} is invalid: {reason}")


def check_checkpoint(note: str, genesis: Genesis, state: LedgerState) -> Checkpoint:
    """The checkpoint of ``note`` if 2f+1 genesis validators signed it, it names our
    own log's root at its size and it commits to our own revoked set at that size;
    raises :class:`FollowError` otherwise (also when our log is not that long yet, or
    the checkpoint has no revoked-set line)."""
    known = {v.name: bytes.fromhex(v.public_key) for v in genesis.validators}
    try:
        cp = verify_checkpoint(note, known, signature_threshold(genesis.n), genesis.chain_id)
    except LedgerError as exc:
        raise FollowError(str(exc)) from None
    if cp.size > state.size:
        raise FollowError(f"checkpoint at size {cp.size} is ahead of our log ({state.size})")
    if cp.size == 0 or cp.root_hash != state.log.root(cp.size):
        raise FollowError(f"checkpoint at size {cp.size} does not match our log's root")
    try:
        count, root = commitment_of(cp)
    except LedgerError as exc:
        raise FollowError(str(exc)) from None
    ours = state.revoked_set(cp.size)
    if count != len(ours) or root != ours.root():
        raise FollowError(
            f"checkpoint at size {cp.size} commits to {count} revoked artifact(s) with root "
            f"{root.hex()[:16]}…, our log has {len(ours)} with root {ours.root().hex()[:16]}…: "
            "no absence proof served against it would verify"
        )
    return cp


class Follower:
    """Replicates the ledger into ``store``/``state``; see the module docstring.

    ``lock`` is held while the state changes (readers computing proofs take it too);
    ``on_block`` is called (without the lock) with each block applied, and
    ``on_checkpoint`` with each newly trusted checkpoint note.
    """

    def __init__(
        self,
        genesis: Genesis,
        urls: Sequence[str],
        store: LedgerStore,
        state: LedgerState,
        lock: threading.RLock,
        *,
        on_block: Callable[[Block, int], None],
        on_checkpoint: Callable[[str, Checkpoint], None],
        timeout: float = 10.0,
    ) -> None:
        if not urls:
            raise FollowError("no validator URL to follow")
        self.genesis = genesis
        self.urls = list(urls)
        self.store = store
        self.state = state
        self.lock = lock
        self.validators = genesis.validator_set()
        self.on_block = on_block
        self.on_checkpoint = on_checkpoint
        self.timeout = timeout
        self.height = store.height()
        last = store.last_block()
        self.last_hash = bytes.fromhex(genesis.hash) if last is None else last[0].hash()
        note = store.latest_checkpoint()
        self.checkpoint_size = 0
        self.checkpoint_time = 0
        if note is not None:
            self.checkpoint_size = check_checkpoint(note, genesis, state).size
            self.checkpoint_time = self._time(note)
        self.refused: dict[str, str] = {}
        """URL → why its answer was last refused (kept after; for logs and status)."""
        self.seen_height = self.height
        """The highest height a validator sent us (applied or not): lag = seen − height."""
        self.tip_time = 0.0
        """When (Unix time) a validator last had no block beyond ours (0: never)."""

    # ------------------------------------------------------------------ one poll

    def poll(self, client: httpx.Client) -> int:
        """Fetch and apply what the validators have beyond us; return blocks applied.

        Raises :class:`FollowError` only when no validator answered at all.
        """
        applied = 0
        answered = 0
        for url in self.urls:
            try:
                applied += self._blocks_from(client, url)
                answered += 1
            except httpx.HTTPError as exc:
                self._refuse(url, f"unreachable: {type(exc).__name__}: {exc}", warn=False)
            except (FollowError, LedgerError, ValueError, KeyError, TypeError) as exc:
                answered += 1
                self._refuse(url, str(exc))
        for url in self.urls:
            try:
                self._checkpoint_from(client, url)
            except httpx.HTTPError:
                continue
            except (FollowError, LedgerError, ValueError, KeyError, TypeError) as exc:
                log.debug("checkpoint from %s not kept: %s", url, exc)
        if not answered:
            raise FollowError("no ledger validator answers at " + ", ".join(self.urls))
        return applied

    def _refuse(self, url: str, why: str, *, warn: bool = True) -> None:
        if self.refused.get(url) != why:
            (log.warning if warn else log.info)("validator %s refused: %s", url, why)
        self.refused[url] = why

    def _blocks_from(self, client: httpx.Client, url: str) -> int:
        applied = 0
        while True:
            r = client.get(f"{url}/v1/blocks", params={"start": self.height + 1, "limit": BATCH})
            if r.status_code != 200:
                raise FollowError(f"GET /v1/blocks answered HTTP {r.status_code}")
            items = r.json()["blocks"]
            if not isinstance(items, list) or not items:
                self.tip_time = time.time()
                return applied
            for item in items:
                block = Block.from_json(item["block"])
                self.seen_height = max(self.seen_height, block.height)
                cert = certificate_from_json(item["certificate"])
                self._apply(block, cert)  # a height other than the next one is refused
                applied += 1

    def _apply(self, block: Block, cert: CommitCertificate) -> None:
        with self.lock:
            check_block(
                block,
                cert,
                height=self.height,
                prev_hash=self.last_hash,
                validators=self.validators,
                state=self.state,
            )
            first = self.state.size
            self.store.commit_block(block, cert, first)
            self.state.apply_block(block.txs)
            self.height = block.height
            self.last_hash = block.hash()
        if block.txs:
            log.info(
                "block %d: %d transaction(s), log size %d",
                block.height,
                len(block.txs),
                block.log_size,
            )
        self.on_block(block, first)

    def _checkpoint_from(self, client: httpx.Client, url: str) -> None:
        r = client.get(f"{url}/v1/checkpoint")
        if r.status_code != 200:
            return
        note = r.json()["note"]
        if not isinstance(note, str):
            raise FollowError("checkpoint note is not text")
        with self.lock:
            cp = check_checkpoint(note, self.genesis, self.state)
            when = self._time(note)
            if cp.size < self.checkpoint_size or (
                cp.size == self.checkpoint_size and when <= self.checkpoint_time
            ):
                return
            self.store.put_checkpoint(cp.size, note)
            grew = cp.size > self.checkpoint_size
            self.checkpoint_size, self.checkpoint_time = cp.size, when
        if grew:
            log.info("checkpoint at tree size %d co-signed and matching our log", cp.size)
        self.on_checkpoint(note, cp)

    def _time(self, note: str) -> int:
        """When 2f+1 validators last vouched for ``note`` (0: no timestamped cosignatures).
        A newer note for the same size replaces the stored one, so readers checking
        freshness (TUF's freeze attack) get the latest co-signing."""
        known = {v.name: bytes.fromhex(v.public_key) for v in self.genesis.validators}
        try:
            return cosigned_time(
                note, known, signature_threshold(self.genesis.n), self.genesis.chain_id
            )
        except LedgerError:
            return 0
