"""The ledger's application state, kept identically by every validator.

:class:`LedgerState` holds the enrolled builders, the genesis operators and
coordinators, which artifacts are attested (and at which log indexes), which are
revoked, the id of every committed transaction, and the RFC 6962 Merkle log whose
leaves are the committed transaction bytes.

Invariants:

- Determinism: the state is a function of the genesis and the sequence of committed
  transaction bytes. :meth:`~LedgerState.check` is pure (it never mutates) and its
  answer depends only on the state and the bytes; two states fed the same
  transactions in the same order have the same root.
- Only what :meth:`~LedgerState.check` accepts is appended; :meth:`~LedgerState.apply`
  raises :class:`~ledger.errors.TransactionError` with the same reason otherwise.
- A proposed block is validated without copying the state: :meth:`check_block` runs
  the batch against an overlay (the state plus the batch's own earlier transactions),
  and :meth:`root_after` computes the log root the block would give from the log's
  right border (O(k + log n) hashing for k new leaves).

An attestation counts only if its agreeing builders span at least ``quorum``
independence domains, as their enroll transactions (or genesis entries) name them
(:func:`farm.quorum.require_domains`, ADR 35).

Signature checks are pure functions of the bytes and the keys, so their outcome is
cached by transaction id (bounded, larger than a full mempool): a transaction checked
at admission is not re-verified at proposal, validation or commit, as long as every
builder it rests on is still enrolled. For an attest transaction the cache keeps only
what the verified bundle established (:class:`_Attested`: builders, arch, artifacts),
not the parsed bundle, so that it stays small.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from securesystemslib.signer import SSlibKey

from farm.attestation import VerifiedBundle, verify_bundle
from farm.errors import FarmError, SigningKeyError
from farm.keys import public_key_from_dict
from farm.merkle import EMPTY_ROOT, MerkleLog, hash_children, hash_leaf
from farm.quorum import require_domains
from farm.transactions import (
    AttestTx,
    EnrollTx,
    RetireTx,
    RevokeTx,
    decode_tx,
    tx_id,
    verify_operator_signature,
)
from ledger.block import Block
from ledger.errors import TransactionError
from ledger.genesis import Genesis
from ledger.revoked_set import RevokedSet, revoked_at
from ledger.transactions import summarize_tx

__all__ = ["BuilderRecord", "LedgerState", "Revocation"]

log = logging.getLogger(__name__)

_CACHE_SIZE = 65_536
"""Transactions whose checked form is cached: more than a full mempool (50,000 by
default), so that none is verified twice between admission and commit."""
_Tx = AttestTx | RevokeTx | EnrollTx | RetireTx


@dataclass(frozen=True)
class BuilderRecord:
    """An enrolled builder. ``enrolled_at`` is None for a genesis builder; ``domain`` is
    its independence domain ("" only for a genesis builder listed without one, which
    then counts as a domain of its own)."""

    keyid: str
    key: dict[str, Any] = field(compare=False)
    public: SSlibKey = field(compare=False, repr=False)
    arches: tuple[str, ...]
    hostname: str
    enrolled_at: int | None
    retired_at: int | None = None
    retire_reason: str | None = None
    domain: str = ""

    @property
    def active(self) -> bool:
        """Enrolled and not retired."""
        return self.retired_at is None

    def allows(self, arch: str) -> bool:
        """Whether results of this builder count for ``arch`` (no arches = any)."""
        return not self.arches or arch in self.arches

    def to_json(self) -> dict[str, Any]:
        """Public JSON form (for the HTTP API)."""
        return {
            "keyid": self.keyid,
            "key": self.key,
            "arches": list(self.arches),
            "hostname": self.hostname,
            "domain": self.domain,
            "enrolled_at": self.enrolled_at,
            "retired_at": self.retired_at,
            "retire_reason": self.retire_reason,
        }


@dataclass(frozen=True)
class Revocation:
    """Why and where an artifact was revoked."""

    sha256: str
    reason: str
    operator: str
    index: int


@dataclass(frozen=True, slots=True)
class _Attested:
    """What verifying an attest transaction's bundle established, independent of the
    state: the builders it rests on, its arch, the artifacts (sha256 hex) it attests."""

    builder_ids: tuple[str, ...]
    arch: str
    artifacts: tuple[str, ...]

    @classmethod
    def of(cls, verified: VerifiedBundle) -> _Attested:
        return cls(tuple(verified.builder_ids), verified.arch, verified.artifact_digests())


_Checked = _Attested | RevokeTx | EnrollTx | RetireTx
"""A cache entry: a verified attest transaction, or a decoded operator transaction."""


@dataclass(frozen=True)
class _Effect:
    """What one accepted transaction changes (besides the log and the tx ids)."""

    kind: str
    artifacts: tuple[str, ...] = ()
    builder: BuilderRecord | None = None
    revocation: Revocation | None = None


def _short(hex_id: str) -> str:
    return hex_id[:12] + "…"


def _domain(view: _View, keyid: str) -> str | None:
    """The independence domain of an enrolled builder (None: a domain of its own)."""
    record = view.builder(keyid)
    return None if record is None or not record.domain else record.domain


def _norm(sha: str) -> str:
    return sha.removeprefix("sha256:")


def _where(index: int | None) -> str:
    return "genesis" if index is None else f"entry {index}"


class _Frontier:
    """The right border of an RFC 6962 tree: the full-subtree roots, highest first."""

    __slots__ = ("stack",)

    def __init__(self, stack: Iterable[tuple[int, bytes]] = ()) -> None:
        self.stack: list[tuple[int, bytes]] = list(stack)

    def push(self, leaf_hash: bytes) -> None:
        height, node = 0, leaf_hash
        stack = self.stack
        while stack and stack[-1][0] == height:
            node = hash_children(stack.pop()[1], node)
            height += 1
        stack.append((height, node))

    def root(self) -> bytes:
        if not self.stack:
            return EMPTY_ROOT
        node = self.stack[-1][1]
        for _, left in reversed(self.stack[:-1]):
            node = hash_children(left, node)
        return node


class _ActiveKeys(Mapping[str, SSlibKey]):
    """keyid → key of the builders that are enrolled and not retired, in a view."""

    def __init__(self, view: _View) -> None:
        self._view = view

    def __getitem__(self, keyid: str) -> SSlibKey:
        record = self._view.builder(keyid)
        if record is None or not record.active:
            raise KeyError(keyid)
        return record.public

    def __iter__(self) -> Iterator[str]:
        return (b.keyid for b in self._view.all_builders() if b.active)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class _View:
    """The queries validation needs; implemented by the state and by an overlay."""

    def index_of(self, txid: str) -> int | None:
        raise NotImplementedError

    def builder(self, keyid: str) -> BuilderRecord | None:
        raise NotImplementedError

    def all_builders(self) -> Iterable[BuilderRecord]:
        raise NotImplementedError

    def first_attested(self, sha: str) -> int | None:
        raise NotImplementedError

    def revocation(self, sha: str) -> Revocation | None:
        raise NotImplementedError

    @property
    def next_index(self) -> int:
        raise NotImplementedError


class _Overlay(_View):
    """A state plus pending transactions, without copying the state."""

    def __init__(self, base: LedgerState) -> None:
        self.base = base
        self.txids: dict[str, int] = {}
        self.builders: dict[str, BuilderRecord] = {}
        self.attested: dict[str, int] = {}
        self.revoked: dict[str, Revocation] = {}
        self.pending = 0
        self.frontier = _Frontier(base._frontier.stack)

    def index_of(self, txid: str) -> int | None:
        found = self.txids.get(txid)
        return found if found is not None else self.base.index_of(txid)

    def builder(self, keyid: str) -> BuilderRecord | None:
        found = self.builders.get(keyid)
        return found if found is not None else self.base.builder(keyid)

    def all_builders(self) -> Iterable[BuilderRecord]:
        merged = {b.keyid: b for b in self.base.all_builders()}
        merged.update(self.builders)
        return merged.values()

    def first_attested(self, sha: str) -> int | None:
        found = self.base.first_attested(sha)
        return found if found is not None else self.attested.get(sha)

    def revocation(self, sha: str) -> Revocation | None:
        found = self.revoked.get(sha)
        return found if found is not None else self.base.revocation(sha)

    @property
    def next_index(self) -> int:
        return self.base.size + self.pending

    def add(self, data: bytes, txid: str, effect: _Effect) -> None:
        index = self.next_index
        self.txids[txid] = index
        if effect.builder is not None:
            self.builders[effect.builder.keyid] = effect.builder
        for sha in effect.artifacts:
            self.attested.setdefault(sha, index)
        if effect.revocation is not None:
            self.revoked[effect.revocation.sha256] = effect.revocation
        self.frontier.push(hash_leaf(data))
        self.pending += 1


class LedgerState(_View):
    """The deterministic application state of one validator. Not thread-safe."""

    def __init__(self, genesis: Genesis) -> None:
        """An empty log over ``genesis``; prefer :meth:`from_genesis`."""
        self.genesis = genesis
        self.quorum = genesis.quorum
        self.operators: dict[str, SSlibKey] = genesis.operator_keys()
        self.coordinators: dict[str, SSlibKey] = genesis.coordinator_keys()
        self._builders: dict[str, BuilderRecord] = {}
        for gb in genesis.builders:
            key = public_key_from_dict(gb.key)
            self._builders[key.keyid] = BuilderRecord(
                keyid=key.keyid,
                key=gb.key,
                public=key,
                arches=gb.arches,
                hostname=gb.hostname,
                enrolled_at=None,
                domain=gb.domain,
            )
        self._attested: dict[str, list[int]] = {}
        self._revoked: dict[str, Revocation] = {}
        self._revoked_now: RevokedSet | None = None  # the revoked set at self.size, lazily
        self._txids: dict[str, int] = {}
        self._log = MerkleLog()
        self._frontier = _Frontier()
        # txid → checked form (see _Checked); pure results, so shareable.
        self._cache: OrderedDict[str, _Checked] = OrderedDict()

    @classmethod
    def from_genesis(cls, g: Genesis) -> LedgerState:
        """The state at height 0 of the chain ``g`` starts."""
        return cls(g)

    # ------------------------------------------------------------------ queries

    @property
    def size(self) -> int:
        """Number of committed transactions (= log size)."""
        return self._log.size

    @property
    def root(self) -> bytes:
        """Root hash of the log."""
        return self._frontier.root()

    @property
    def log(self) -> MerkleLog:
        """The Merkle log (for proofs). Do not append to it directly."""
        return self._log

    def entry_index(self, txid: str) -> int | None:
        """Log index of the committed transaction ``txid``, if any."""
        return self._txids.get(txid)

    def index_of(self, txid: str) -> int | None:
        """Same as :meth:`entry_index`."""
        return self._txids.get(txid)

    def builder(self, keyid: str) -> BuilderRecord | None:
        """The builder record for ``keyid`` (active or retired), if ever enrolled."""
        return self._builders.get(keyid)

    def all_builders(self) -> Iterable[BuilderRecord]:
        """Every builder ever enrolled."""
        return self._builders.values()

    def builders(self) -> tuple[BuilderRecord, ...]:
        """Every builder ever enrolled, sorted by key id."""
        return tuple(sorted(self._builders.values(), key=lambda b: b.keyid))

    def active_builder_keys(self) -> dict[str, SSlibKey]:
        """keyid → key of the builders currently enrolled and not retired."""
        return {b.keyid: b.public for b in self._builders.values() if b.active}

    def first_attested(self, sha: str) -> int | None:
        """Index of the first attestation of ``sha``, if any."""
        found = self._attested.get(sha)
        return found[0] if found else None

    def attestations_for(self, sha: str) -> tuple[int, ...]:
        """Log indexes of the attest transactions naming artifact ``sha`` (hex or
        ``sha256:hex``), oldest first."""
        return tuple(self._attested.get(_norm(sha), ()))

    def revocation(self, sha: str) -> Revocation | None:
        """The revocation of artifact ``sha`` (hex or ``sha256:hex``), if revoked."""
        return self._revoked.get(_norm(sha))

    def revoked_set(self, size: int | None = None) -> RevokedSet:
        """The revoked set at tree ``size`` (default: now), which the checkpoint of that
        size commits to (:mod:`ledger.revoked_set`). The current one is kept until the
        next revocation and also serves every earlier size after the last revocation
        (revocations are kept in log order); only a size before it is computed anew."""
        if size is not None and size < self.size:
            last = next(reversed(self._revoked.values()), None)
            if last is not None and last.index >= size:
                return revoked_at({sha: r.index for sha, r in self._revoked.items()}, size)
        if self._revoked_now is None:
            self._revoked_now = RevokedSet(self._revoked)
        return self._revoked_now

    def is_revoked(self, sha: str) -> bool:
        """Whether artifact ``sha`` (hex or ``sha256:hex``) is revoked."""
        return _norm(sha) in self._revoked

    @property
    def next_index(self) -> int:
        return self._log.size

    # --------------------------------------------------------------- validation

    def check(self, tx: bytes) -> str | None:
        """None if ``tx`` may be appended now, else the reason it may not. Pure."""
        reason, _, _ = self._evaluate(tx, self)
        return reason

    def check_block(self, txs: Sequence[bytes]) -> str | None:
        """None if the transactions may be appended in this order (each is checked
        against the state plus the batch's earlier ones), else the first reason,
        naming the transaction. Pure: the state is not changed."""
        overlay = _Overlay(self)
        for i, data in enumerate(txs):
            reason, txid, effect = self._evaluate(data, overlay)
            if reason is not None or effect is None:
                short = "" if txid is None else f" {_short(txid)}"
                return f"transaction {i}{short}: {reason}"
            assert txid is not None
            overlay.add(data, txid, effect)
        return None

    def validate_block(self, block: Block) -> str | None:
        """None if ``block`` may follow this state: its transactions pass
        :meth:`check_block` and its log size and root are what appending them gives.
        (Height and previous-hash linkage are the node's to check.) Pure."""
        expected_size = self.size + len(block.txs)
        if block.log_size != expected_size:
            return f"block says log size {block.log_size}, its transactions give {expected_size}"
        reason = self.check_block(block.txs)
        if reason is not None:
            return reason
        root, _ = self.root_after(block.txs)
        if root != block.log_root:
            return (
                f"block says log root {block.log_root.hex()[:16]}…, "
                f"its transactions give {root.hex()[:16]}…"
            )
        return None

    def filter_valid(self, txs: Iterable[bytes]) -> tuple[list[bytes], list[tuple[bytes, str]]]:
        """Split candidates (e.g. a mempool, in order) into a batch that
        :meth:`check_block` accepts and the rejected ones with their reasons."""
        overlay = _Overlay(self)
        accepted: list[bytes] = []
        rejected: list[tuple[bytes, str]] = []
        for data in txs:
            reason, txid, effect = self._evaluate(data, overlay)
            if reason is not None or effect is None or txid is None:
                rejected.append((data, reason or "invalid"))
                continue
            overlay.add(data, txid, effect)
            accepted.append(data)
        return accepted, rejected

    def root_after(self, txs: Sequence[bytes]) -> tuple[bytes, int]:
        """(root, size) the log would have after appending ``txs``. Pure."""
        frontier = _Frontier(self._frontier.stack)
        for data in txs:
            frontier.push(hash_leaf(data))
        return frontier.root(), self.size + len(txs)

    def summary(self, data: bytes) -> tuple[str, tuple[str, ...]]:
        """(type, attested sha256s) of a transaction this state has validated, as
        :func:`ledger.transactions.summarize_tx` gives them (the artifacts possibly in
        another order), from the validation cache when it still holds the transaction,
        else by a light parse.

        Raises:
            TransactionError: the bytes are not even shaped like a transaction.
        """
        hit = self._cache.get(tx_id(data))
        if isinstance(hit, _Attested):
            return "attest", hit.artifacts
        if hit is not None:
            return hit.type, ()
        return summarize_tx(data)

    # ------------------------------------------------------------------ change

    def apply(self, tx: bytes) -> int:
        """Append ``tx``; return its log index.

        Raises:
            TransactionError: :meth:`check` refuses it (the message is the reason).
        """
        reason, txid, effect = self._evaluate(tx, self)
        if reason is not None or effect is None or txid is None:
            raise TransactionError(reason or "invalid transaction")
        return self._commit(tx, txid, effect)

    def apply_block(self, txs: Sequence[bytes]) -> list[int]:
        """Append a whole batch or nothing; return the indexes.

        Raises:
            TransactionError: :meth:`check_block` refuses the batch.
        """
        reason = self.check_block(txs)
        if reason is not None:
            raise TransactionError(reason)
        return [self.apply(tx) for tx in txs]

    def copy(self) -> LedgerState:
        """An independent copy (O(n) pointer copies, no hashing). Prefer
        :meth:`check_block` / :meth:`root_after` to validate a block."""
        other = LedgerState.__new__(LedgerState)
        other.genesis = self.genesis
        other.quorum = self.quorum
        other.operators = self.operators
        other.coordinators = self.coordinators
        other._builders = dict(self._builders)
        other._attested = {k: list(v) for k, v in self._attested.items()}
        other._revoked = dict(self._revoked)
        other._revoked_now = None
        other._txids = dict(self._txids)
        log_copy = MerkleLog()
        # The log is exactly its levels of full-subtree hashes (immutable bytes).
        log_copy._levels = [list(level) for level in self._log._levels]
        other._log = log_copy
        other._frontier = _Frontier(self._frontier.stack)
        other._cache = self._cache
        return other

    def _commit(self, data: bytes, txid: str, effect: _Effect) -> int:
        leaf = hash_leaf(data)
        index = self._log.append(leaf)
        self._frontier.push(leaf)
        self._txids[txid] = index
        for sha in effect.artifacts:
            self._attested.setdefault(sha, []).append(index)
        self._take_effect(effect)
        return index

    def restore_entry(
        self, data: bytes | None, txid: str, leaf_hash: bytes, kind: str, artifacts: Sequence[str]
    ) -> None:
        """Append an entry read back from this validator's own store, without checks.

        ``data`` may be None for an attest entry (its ``artifacts`` say what it
        attested); other kinds need their bytes to rebuild builders and revocations.
        """
        index = self._log.append(leaf_hash)
        self._frontier.push(leaf_hash)
        self._txids[txid] = index
        for sha in artifacts:
            self._attested.setdefault(sha, []).append(index)
        if kind == "attest":
            return
        if data is None:
            raise TransactionError(f"entry {index}: {kind} entry without its bytes")
        tx = decode_tx(data)
        if isinstance(tx, AttestTx):
            raise TransactionError(f"entry {index}: stored as {kind} but is an attest")
        self._take_effect(self._effect(tx, index, self))

    def _take_effect(self, effect: _Effect) -> None:
        """Record the builder or revocation an appended operator transaction made."""
        if effect.builder is not None:
            self._builders[effect.builder.keyid] = effect.builder
        if effect.revocation is not None:
            self._revoked[effect.revocation.sha256] = effect.revocation
            self._revoked_now = None

    # -------------------------------------------------------------- the rules

    def _decode_cached(self, data: bytes, txid: str) -> _Tx | _Attested:
        """The cached checked form of ``data``, else the decoded transaction (an
        operator transaction is cached as decoded; an attest one once verified)."""
        hit = self._cache.get(txid)
        if hit is not None:
            self._cache.move_to_end(txid)
            return hit
        tx = decode_tx(data)
        if not isinstance(tx, AttestTx):
            self._remember(txid, tx)
        return tx

    def _remember(self, txid: str, entry: _Checked) -> None:
        self._cache[txid] = entry
        self._cache.move_to_end(txid)
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)

    def _evaluate(self, data: bytes, view: _View) -> tuple[str | None, str | None, _Effect | None]:
        """(reason or None, txid, effect) of appending ``data`` to ``view``."""
        if not isinstance(data, bytes):
            return "transaction is not bytes", None, None
        txid = tx_id(data)
        seen = view.index_of(txid)
        if seen is not None:
            return f"duplicate of entry {seen}", txid, None
        try:
            tx = self._decode_cached(data, txid)
        except TransactionError as exc:
            return str(exc), txid, None
        reason: str | None
        if isinstance(tx, AttestTx | _Attested):
            reason, attested = self._check_attest(data, tx, txid, view)
            effect = None if attested is None else _Effect("attest", attested.artifacts)
        else:
            reason = verify_operator_signature(
                tx, self.operators, self.genesis.chain_id
            ) or self._check_operator_tx(tx, view)
            effect = None if reason is not None else self._effect(tx, view.next_index, view)
        return reason, txid, effect

    def _check_attest(
        self, data: bytes, tx: AttestTx | _Attested, txid: str, view: _View
    ) -> tuple[str | None, _Attested | None]:
        """(reason or None, what the bundle establishes) for an attest transaction,
        decoded (``tx``) or found verified in the cache."""
        verified = tx if isinstance(tx, _Attested) else None
        if verified is not None:
            # Still valid iff every builder it rests on is still enrolled and active;
            # otherwise verify again against the builders enrolled now.
            for b in verified.builder_ids:
                record = view.builder(b)
                if record is None or not record.active:
                    verified = None
                    break
        if verified is None:
            try:
                decoded = tx if isinstance(tx, AttestTx) else decode_tx(data)
            except TransactionError as exc:  # cannot happen: the bytes decoded before
                return str(exc), None
            if not isinstance(decoded, AttestTx):  # cannot happen either
                return "not an attest transaction", None
            try:
                bundle = verify_bundle(
                    decoded.bundle, _ActiveKeys(view), self.coordinators, self.quorum
                )
            except FarmError as exc:
                return str(exc), None
            verified = _Attested.of(bundle)
            self._remember(txid, verified)
        reason = self._check_builders(verified, view)
        if reason is not None:
            return reason, None
        for sha in verified.artifacts:
            revoked = view.revocation(sha)
            if revoked is not None:
                return f"artifact sha256:{_short(sha)} is revoked ({_where(revoked.index)})", None
        return None, verified

    def _check_builders(self, verified: _Attested, view: _View) -> str | None:
        """Why the builders of a verified bundle cannot attest here: one not enrolled
        for the arch, or fewer than quorum independence domains among them."""
        for b in verified.builder_ids:
            record = view.builder(b)
            assert record is not None
            if not record.allows(verified.arch):
                return f"builder {_short(b)} is not enrolled for arch {verified.arch}"
        try:
            require_domains(verified.builder_ids, lambda b: _domain(view, b), self.quorum)
        except FarmError as exc:
            return str(exc)
        return None

    def _check_operator_tx(self, tx: RevokeTx | EnrollTx | RetireTx, view: _View) -> str | None:
        if isinstance(tx, RevokeTx):
            return self._check_revoke(tx, view)
        if isinstance(tx, EnrollTx):
            return self._check_enroll(tx, view)
        return self._check_retire(tx, view)

    @staticmethod
    def _check_revoke(tx: RevokeTx, view: _View) -> str | None:
        what = f"artifact sha256:{_short(tx.artifact)}"
        if view.first_attested(tx.artifact) is None:
            return f"{what} is not attested"
        revoked = view.revocation(tx.artifact)
        if revoked is not None:
            return f"{what} is already revoked ({_where(revoked.index)})"
        return None

    @staticmethod
    def _check_enroll(tx: EnrollTx, view: _View) -> str | None:
        try:
            key = public_key_from_dict(tx.key)
        except SigningKeyError as exc:
            return f"enroll: {exc}"
        record = view.builder(key.keyid)
        if record is None:
            return None
        who = f"builder {_short(key.keyid)}"
        if record.active:
            return f"{who} is already enrolled ({_where(record.enrolled_at)})"
        return f"{who} was retired ({_where(record.retired_at)}); enroll a new key"

    @staticmethod
    def _check_retire(tx: RetireTx, view: _View) -> str | None:
        record = view.builder(tx.builder)
        who = f"builder {_short(tx.builder)}"
        if record is None:
            return f"{who} is not enrolled"
        if not record.active:
            return f"{who} is already retired ({_where(record.retired_at)})"
        return None

    def _effect(self, tx: RevokeTx | EnrollTx | RetireTx, index: int, view: _View) -> _Effect:
        if isinstance(tx, RevokeTx):
            return _Effect(
                "revoke",
                revocation=Revocation(tx.artifact, tx.reason, tx.operator, index),
            )
        if isinstance(tx, EnrollTx):
            key = public_key_from_dict(tx.key)
            return _Effect(
                "enroll",
                builder=BuilderRecord(
                    keyid=key.keyid,
                    key=tx.key,
                    public=key,
                    arches=tx.arches,
                    hostname=tx.hostname,
                    enrolled_at=index,
                    domain=tx.domain,
                ),
            )
        record = view.builder(tx.builder)
        if record is None:
            raise TransactionError(f"builder {_short(tx.builder)} is not enrolled")
        return _Effect("retire", builder=replace(record, retired_at=index, retire_reason=tx.reason))
