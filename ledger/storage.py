"""A validator's durable store: blocks, certificates, log entries, checkpoints.

One SQLite file in WAL mode with ``synchronous=FULL`` (a commit is fsynced before it
returns). Tables:

* ``blocks``      height → block header (canonical JSON without the transactions),
                  its hash, its commit certificate, and the log range it appended;
* ``entries``     log index → transaction bytes, tx id, leaf hash, kind, and the
                  artifacts an attest names (so the state is rebuilt without
                  re-parsing every bundle);
* ``checkpoints`` tree size → signed note (co-signatures merged by the caller);
* ``meta``        the node's own small persistent values;
* ``lock``        the block this validator is locked on (one row at most): its header
                  as JSON and its transactions as one blob of length-prefixed bytes
                  (no hex, no JSON: it is rewritten, fsynced, whenever the lock moves);
* ``store_info``  the genesis hash the store belongs to;
* ``evidence``    equivocations this validator saw (:meth:`LedgerStore.put_evidence`):
                  the offender, height, round, kind (proposal, prevote, precommit),
                  both signed messages in their wire form (canonical JSON of
                  :meth:`Message.to_json <ledger.consensus.Vote.to_json>`) and when it
                  was first seen.

Schema changes are additive: every table is created with ``CREATE TABLE IF NOT
EXISTS`` when a store opens, so a file made before a table existed gains it (empty)
and keeps everything else.

Evidence is bounded so that a Byzantine validator cannot fill the disk: one record per
(offender, height, round, kind) slot (one conflicting pair proves the fault there; a
third value at the same slot, or the same pair relayed or seen again after a restart,
adds nothing and is ignored), and per offender at most :data:`EVIDENCE_PER_VALIDATOR`
records and :data:`EVIDENCE_BYTES_PER_VALIDATOR` bytes of messages, the oldest records
evicted first (the newest is always kept, so the bound is the larger of the byte cap
and one record). Offenders are validators of the genesis (the machine checks both
signatures first), so the whole table is bounded by n times that.

Invariants: :meth:`LedgerStore.commit_block` writes a block, its certificate and all
its entries in one SQLite transaction, so after a crash the store holds a prefix of
whole blocks; heights are contiguous from 1 and entry indexes contiguous from 0; a
store refuses to open with a genesis other than the one it was created with; the
state :meth:`LedgerStore.load_state` rebuilds must have the root and size the last
block names, or it raises.
"""

from __future__ import annotations

import json
import sqlite3
import struct
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from farm.canonical import canonical_json
from farm.merkle import hash_leaf
from farm.transactions import tx_id
from ledger.block import Block, CommitCertificate, CommitSig
from ledger.errors import ConsensusError, StorageError, TransactionError
from ledger.genesis import Genesis
from ledger.messages import Equivocation, message_kind, message_value
from ledger.state import LedgerState
from ledger.transactions import summarize_tx

__all__ = [
    "EVIDENCE_BYTES_PER_VALIDATOR",
    "EVIDENCE_PER_VALIDATOR",
    "EvidenceRecord",
    "LedgerStore",
    "certificate_from_json",
]

EVIDENCE_PER_VALIDATOR = 64
"""Most evidence records kept per offending validator (the oldest are evicted)."""

EVIDENCE_BYTES_PER_VALIDATOR = 64 * 1024 * 1024
"""Most bytes of stored messages per offending validator (a proposal carries its whole
block, so a pair of them can be megabytes); the oldest records are evicted first."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS store_info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
    height INTEGER PRIMARY KEY,
    hash BLOB NOT NULL,
    header TEXT NOT NULL,
    cert TEXT NOT NULL,
    first_index INTEGER NOT NULL,
    log_size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS entries (
    idx INTEGER PRIMARY KEY,
    txid TEXT NOT NULL UNIQUE,
    height INTEGER NOT NULL,
    kind TEXT NOT NULL,
    leaf_hash BLOB NOT NULL,
    artifacts TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (size INTEGER PRIMARY KEY, note TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS lock (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    height INTEGER NOT NULL,
    round INTEGER NOT NULL,
    header TEXT NOT NULL,
    txs BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS evidence (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    validator TEXT NOT NULL,
    height INTEGER NOT NULL,
    round INTEGER NOT NULL,
    kind TEXT NOT NULL,
    first TEXT NOT NULL,
    second TEXT NOT NULL,
    seen_at INTEGER NOT NULL,
    size INTEGER NOT NULL,
    UNIQUE (validator, height, round, kind)
);
"""

_LEN = struct.Struct(">I")


def _pack_txs(txs: Sequence[bytes]) -> bytes:
    """Transactions as one blob: each a 4-byte big-endian length, then its bytes."""
    return b"".join(_LEN.pack(len(tx)) + tx for tx in txs)


def _unpack_txs(blob: bytes) -> tuple[bytes, ...]:
    """Inverse of :func:`_pack_txs`; raises ValueError on a truncated blob."""
    out = []
    at = 0
    while at < len(blob):
        if at + _LEN.size > len(blob):
            raise ValueError("truncated length")
        (n,) = _LEN.unpack_from(blob, at)
        at += _LEN.size
        if at + n > len(blob):
            raise ValueError("truncated transaction")
        out.append(blob[at : at + n])
        at += n
    return tuple(out)


def certificate_from_json(data: dict[str, Any]) -> CommitCertificate:
    """Inverse of :meth:`CommitCertificate.to_json`. Raises :class:`ConsensusError`."""
    try:
        if data["type"] != "farm-ledger/commit/v1":
            raise ConsensusError(f"not a commit certificate: type {data['type']!r}")
        return CommitCertificate(
            height=int(data["height"]),
            round=int(data["round"]),
            block_hash=bytes.fromhex(data["block_hash"]),
            signatures=tuple(
                CommitSig(validator=str(s["validator"]), signature=bytes.fromhex(s["signature"]))
                for s in data["signatures"]
            ),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConsensusError(f"malformed commit certificate: {exc}") from None


@dataclass(frozen=True)
class EvidenceRecord:
    """One stored equivocation: ``first`` and ``second`` are the two conflicting
    messages in wire form, exactly as signed (check them with
    :func:`ledger.verify.verify_equivocation`)."""

    id: int
    validator: str
    height: int
    round: int
    kind: str
    first: dict[str, Any]
    second: dict[str, Any]
    seen_at: int

    def to_json(self) -> dict[str, Any]:
        """The record as ``GET /v1/evidence`` serves it."""
        return {
            "id": self.id,
            "validator": self.validator,
            "height": self.height,
            "round": self.round,
            "kind": self.kind,
            "first": self.first,
            "second": self.second,
            "seen_at": self.seen_at,
        }


def _header_json(block: Block) -> dict[str, Any]:
    """:meth:`Block.to_json` without ``txs`` (and without hexing them first)."""
    value = replace(block, txs=()).to_json()
    del value["txs"]
    return value


class LedgerStore:
    """The SQLite store of one validator. Safe to share between threads (one lock)."""

    def __init__(self, path: Path, genesis: Genesis | None = None) -> None:
        """Open or create the store at ``path``.

        With ``genesis``, a new store records its hash and an existing one must have
        the same. Raises :class:`StorageError` if the file cannot be used or belongs to
        another chain.
        """
        self.path = path
        self._lock = threading.RLock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"{path}: cannot open the ledger store: {exc}") from None
        if genesis is not None:
            self._bind_genesis(genesis)

    def _bind_genesis(self, genesis: Genesis) -> None:
        want = genesis.hash
        with self._write():
            row = self._db.execute("SELECT value FROM store_info WHERE key='genesis'").fetchone()
            if row is None:
                self._db.execute("INSERT INTO store_info VALUES ('genesis', ?)", (want,))
                self._db.execute(
                    "INSERT INTO store_info VALUES ('chain_id', ?)", (genesis.chain_id,)
                )
        if row is not None and row[0] != want:
            raise StorageError(
                f"{self.path}: store belongs to genesis {row[0][:16]}…, not {want[:16]}… "
                f"(chain {genesis.chain_id}); refusing to open it"
            )

    @property
    def genesis_hash(self) -> str | None:
        """The genesis hash this store was created with, if bound."""
        row = self._read("SELECT value FROM store_info WHERE key='genesis'")
        return None if row is None else str(row[0])

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    # ----------------------------------------------------------------- plumbing

    @contextmanager
    def _write(self) -> Iterator[None]:
        """One immediate transaction: committed on success, rolled back on any error."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StorageError(f"{self.path}: cannot write: {exc}") from None
            try:
                yield
            except BaseException as exc:
                self._db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StorageError(
                        f"{self.path}: write failed, nothing written: {exc}"
                    ) from None
                raise
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._db.execute("ROLLBACK")
                raise StorageError(f"{self.path}: commit failed, nothing written: {exc}") from None

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchone()
            except sqlite3.Error as exc:
                raise StorageError(f"{self.path}: cannot read: {exc}") from None

    def _read_all(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise StorageError(f"{self.path}: cannot read: {exc}") from None

    # ------------------------------------------------------------------- blocks

    def commit_block(
        self,
        block: Block,
        cert: CommitCertificate,
        first_index: int,
        summaries: Sequence[tuple[str, tuple[str, ...]]] | None = None,
    ) -> None:
        """Store ``block``, its certificate and its transactions as log entries
        ``first_index…`` in one atomic, fsynced transaction.

        ``summaries`` are the transactions' (kind, attested sha256s) if the caller
        already knows them from validating the block (as :func:`summarize_tx` gives
        them, the artifacts in any order); otherwise each transaction is summarized.

        Raises:
            StorageError: the block does not follow the stored chain (height, log
                index, log size, certificate hash), a tx id is already stored, or the
                write failed; in every case nothing is written.
        """
        if cert.block_hash != block.hash() or cert.height != block.height:
            raise StorageError(f"certificate is not for block {block.height}")
        if block.log_size != first_index + len(block.txs):
            raise StorageError(
                f"block {block.height} says log size {block.log_size}, but "
                f"{first_index} + {len(block.txs)} transactions"
            )
        if summaries is not None and len(summaries) != len(block.txs):
            raise StorageError(f"block {block.height}: one summary per transaction needed")
        rows = []
        for offset, data in enumerate(block.txs):
            if summaries is not None:
                kind, artifacts = summaries[offset]
            else:
                try:
                    kind, artifacts = summarize_tx(data)
                except TransactionError as exc:
                    raise StorageError(f"block {block.height} tx {offset}: {exc}") from None
            rows.append(
                (
                    first_index + offset,
                    tx_id(data),
                    block.height,
                    kind,
                    hash_leaf(data),
                    ",".join(artifacts),
                    data,
                )
            )
        header = canonical_json(_header_json(block)).decode()
        certificate = canonical_json(cert.to_json()).decode()
        with self._write():
            last = self._db.execute(
                "SELECT height, log_size FROM blocks ORDER BY height DESC LIMIT 1"
            ).fetchone()
            height, size = (0, 0) if last is None else (int(last[0]), int(last[1]))
            if block.height != height + 1:
                raise StorageError(f"block {block.height} does not follow stored height {height}")
            if first_index != size:
                raise StorageError(
                    f"block {block.height} starts at entry {first_index}, not {size}"
                )
            self._db.execute(
                "INSERT INTO blocks VALUES (?, ?, ?, ?, ?, ?)",
                (block.height, block.hash(), header, certificate, first_index, block.log_size),
            )
            self._db.executemany("INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def height(self) -> int:
        """Height of the last committed block; 0 if none."""
        row = self._read("SELECT MAX(height) FROM blocks")
        return 0 if row is None or row[0] is None else int(row[0])

    def _decode_block(self, row: Any) -> tuple[Block, CommitCertificate]:
        height, stored_hash, header, cert, first, size = row

        value = json.loads(header)
        txs = [
            r[0]
            for r in self._read_all(
                "SELECT data FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx", (first, size)
            )
        ]
        value["txs"] = [bytes(t).hex() for t in txs]
        try:
            block = Block.from_json(value)
            certificate = certificate_from_json(json.loads(cert))
        except ConsensusError as exc:
            raise StorageError(f"{self.path}: block {height} is corrupt: {exc}") from None
        if block.hash() != bytes(stored_hash):
            raise StorageError(f"{self.path}: block {height} does not match its stored hash")
        return block, certificate

    def block(self, height: int) -> tuple[Block, CommitCertificate] | None:
        """The block at ``height`` with its certificate, if stored."""
        row = self._read(
            "SELECT height, hash, header, cert, first_index, log_size FROM blocks WHERE height=?",
            (height,),
        )
        return None if row is None else self._decode_block(row)

    def blocks(self, from_h: int, to_h: int) -> list[tuple[Block, CommitCertificate]]:
        """Stored blocks with heights ``from_h`` to ``to_h`` inclusive, in order."""
        rows = self._read_all(
            "SELECT height, hash, header, cert, first_index, log_size FROM blocks "
            "WHERE height >= ? AND height <= ? ORDER BY height",
            (from_h, to_h),
        )
        return [self._decode_block(r) for r in rows]

    def last_block(self) -> tuple[Block, CommitCertificate] | None:
        """The last committed block with its certificate, if any."""
        return self.block(self.height())

    # ------------------------------------------------------------------ entries

    def size(self) -> int:
        """Number of stored log entries."""
        row = self._read("SELECT COUNT(*) FROM entries")
        return int(row[0])

    def entry(self, index: int) -> bytes | None:
        """Transaction bytes at log ``index``, if stored."""
        row = self._read("SELECT data FROM entries WHERE idx=?", (index,))
        return None if row is None else bytes(row[0])

    def entries(self, start: int, end: int) -> list[bytes]:
        """Transaction bytes of log entries ``[start, end)``, in order."""
        rows = self._read_all(
            "SELECT data FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx", (start, end)
        )
        return [bytes(r[0]) for r in rows]

    def entry_index(self, txid: str) -> int | None:
        """Log index of the transaction ``txid``, if stored."""
        row = self._read("SELECT idx FROM entries WHERE txid=?", (txid,))
        return None if row is None else int(row[0])

    def entry_height(self, index: int) -> int | None:
        """Height of the block holding log entry ``index``, if stored."""
        row = self._read("SELECT height FROM entries WHERE idx=?", (index,))
        return None if row is None else int(row[0])

    def leaf_hashes(self) -> list[bytes]:
        """Every leaf hash in log order (rebuilds a MerkleLog without re-hashing data)."""
        return [bytes(r[0]) for r in self._read_all("SELECT leaf_hash FROM entries ORDER BY idx")]

    # -------------------------------------------------------------- checkpoints

    def put_checkpoint(self, size: int, note: str) -> None:
        """Store (or replace, e.g. with more co-signatures) the signed note for ``size``."""
        with self._write():
            self._db.execute("INSERT OR REPLACE INTO checkpoints VALUES (?, ?)", (size, note))

    def checkpoint(self, size: int) -> str | None:
        """The signed note stored for tree size ``size``, if any."""
        row = self._read("SELECT note FROM checkpoints WHERE size=?", (size,))
        return None if row is None else str(row[0])

    def latest_checkpoint(self) -> str | None:
        """The signed note of the largest stored tree size, if any."""
        row = self._read("SELECT note FROM checkpoints ORDER BY size DESC LIMIT 1")
        return None if row is None else str(row[0])

    # --------------------------------------------------------------------- meta

    def get_meta(self, key: str) -> str | None:
        """The node's persistent value for ``key``, if set."""
        row = self._read("SELECT value FROM meta WHERE key=?", (key,))
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        """Durably set the node's persistent value for ``key`` (fsynced on return)."""
        with self._write():
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # --------------------------------------------------------------------- lock

    def set_lock(self, height: int, round: int, block: Block) -> None:
        """Durably record that this validator is locked on ``block`` at (height, round),
        replacing any earlier lock (fsynced on return)."""
        header = json.dumps(_header_json(block), separators=(",", ":"))
        with self._write():
            self._db.execute(
                "INSERT OR REPLACE INTO lock VALUES (0, ?, ?, ?, ?)",
                (height, round, header, _pack_txs(block.txs)),
            )

    def get_lock(self) -> tuple[int, int, Block] | None:
        """The recorded lock (height, round, block), if any.

        Raises:
            StorageError: the recorded lock is corrupt.
        """
        row = self._read("SELECT height, round, header, txs FROM lock WHERE id = 0")
        if row is None:
            return None
        height, round, header, blob = row
        try:
            bare = Block.from_json({**json.loads(header), "txs": []})
            block = replace(bare, txs=_unpack_txs(bytes(blob)))
        except (ValueError, TypeError, ConsensusError) as exc:
            raise StorageError(f"{self.path}: the recorded lock is corrupt: {exc}") from None
        return int(height), int(round), block

    # ----------------------------------------------------------------- evidence

    def put_evidence(self, evidence: Equivocation, seen_at: int) -> bool:
        """Durably store ``evidence`` (seen at unix time ``seen_at``) unless its slot
        (offender, height, round, kind) already has a record; then evict the offender's
        oldest records beyond :data:`EVIDENCE_PER_VALIDATOR` records or
        :data:`EVIDENCE_BYTES_PER_VALIDATOR` bytes (never the new one). The messages'
        signatures are not checked here: the machine checked them before recording.

        Returns:
            True if a new record was stored.

        Raises:
            StorageError: the two messages are not one validator's conflicting messages
                for one slot, or the write failed (nothing is written).
        """
        first, second = evidence.first, evidence.second
        slot = (first.sender, first.height, first.round, message_kind(first))
        if slot != (evidence.validator, evidence.height, evidence.round, evidence.kind) or (
            slot != (second.sender, second.height, second.round, message_kind(second))
        ):
            raise StorageError(
                f"not one slot's evidence: {slot} and "
                f"{(second.sender, second.height, second.round, message_kind(second))}"
            )
        if message_value(first) == message_value(second):
            raise StorageError(f"not evidence: both messages of {slot} have the same value")
        first_text = canonical_json(first.to_json()).decode()
        second_text = canonical_json(second.to_json()).decode()
        size = len(first_text) + len(second_text)
        with self._write():
            cur = self._db.execute(
                "INSERT OR IGNORE INTO evidence "
                "(validator, height, round, kind, first, second, seen_at, size) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (*slot, first_text, second_text, seen_at, size),
            )
            if cur.rowcount == 0:
                return False
            new_id = cur.lastrowid
            rows = self._db.execute(
                "SELECT id, size FROM evidence WHERE validator = ? ORDER BY id DESC",
                (evidence.validator,),
            ).fetchall()
            kept, total, evict = 0, 0, []
            for rid, rsize in rows:
                if rid != new_id and (
                    kept >= EVIDENCE_PER_VALIDATOR or total + rsize > EVIDENCE_BYTES_PER_VALIDATOR
                ):
                    evict.append((rid,))
                    continue
                kept += 1
                total += rsize
            self._db.executemany("DELETE FROM evidence WHERE id = ?", evict)
        return True

    def evidence(
        self, *, validator: str | None = None, start: int = 0, limit: int = 64
    ) -> list[EvidenceRecord]:
        """Stored evidence with id ``start`` or more (of ``validator`` only, if given),
        oldest first, at most ``limit`` records.

        Raises:
            StorageError: a stored record is corrupt, or the read failed.
        """
        rows = self._read_all(
            "SELECT id, validator, height, round, kind, first, second, seen_at FROM evidence "
            "WHERE id >= ? AND (? IS NULL OR validator = ?) ORDER BY id LIMIT ?",
            (start, validator, validator, max(0, limit)),
        )
        out = []
        for rid, name, height, round, kind, first, second, seen_at in rows:
            try:
                pair = json.loads(first), json.loads(second)
            except ValueError as exc:
                raise StorageError(f"{self.path}: evidence {rid} is corrupt: {exc}") from None
            out.append(
                EvidenceRecord(
                    int(rid), str(name), int(height), int(round), str(kind), *pair, int(seen_at)
                )
            )
        return out

    def evidence_count(self, validator: str | None = None) -> int:
        """Number of stored evidence records (of ``validator`` only, if given)."""
        if validator is None:
            row = self._read("SELECT COUNT(*) FROM evidence")
        else:
            row = self._read("SELECT COUNT(*) FROM evidence WHERE validator = ?", (validator,))
        return int(row[0])

    # -------------------------------------------------------------------- state

    def _check_chain(self) -> None:
        """Heights contiguous from 1, each block naming its predecessor's hash, log
        ranges contiguous from 0."""
        rows = self._read_all(
            "SELECT height, hash, header, first_index, log_size FROM blocks ORDER BY height"
        )
        prev_hash: bytes | None = None
        size = 0
        for expected, (height, stored_hash, header, first, log_size) in enumerate(rows, start=1):
            value = json.loads(header)
            if height != expected:
                raise StorageError(f"{self.path}: block {expected} is missing")
            if prev_hash is not None and value["prev_hash"] != prev_hash.hex():
                raise StorageError(
                    f"{self.path}: block {height} does not follow block {height - 1}"
                )
            if first != size or log_size < first:
                raise StorageError(f"{self.path}: block {height} log range does not follow")
            prev_hash, size = bytes(stored_hash), log_size

    def load_state(self, genesis: Genesis, *, revalidate: bool = False) -> LedgerState:
        """Rebuild the application state from the stored entries.

        Entries were validated before they were committed, so they are replayed
        without re-checking signatures; attest entries are not even re-parsed (the
        stored artifact list is used). The result must match the last block's log
        root and size. With ``revalidate`` every entry is checked again in full,
        signatures included (slow: about a millisecond per attestation).

        Raises:
            StorageError: another genesis, an entry that fails re-validation, or the
                rebuilt log does not match the last stored block.
        """
        bound = self.genesis_hash
        if bound is not None and bound != genesis.hash:
            raise StorageError(f"{self.path}: store belongs to another genesis")
        state = LedgerState.from_genesis(genesis)
        if revalidate:
            for index, data in enumerate(self.entries(0, self.size())):
                reason = state.check(data)
                if reason is not None:
                    raise StorageError(f"{self.path}: entry {index} does not validate: {reason}")
                state.apply(data)
            self._check_chain()
            self._check_last_block(state)
            return state
        rows = self._read_all(
            "SELECT idx, txid, kind, leaf_hash, artifacts, "
            "CASE WHEN kind = 'attest' THEN NULL ELSE data END FROM entries ORDER BY idx"
        )
        try:
            for idx, txid, kind, leaf, artifacts, data in rows:
                if idx != state.size:
                    raise StorageError(f"{self.path}: entry {state.size} is missing")
                state.restore_entry(
                    None if data is None else bytes(data),
                    txid,
                    bytes(leaf),
                    kind,
                    artifacts.split(",") if artifacts else (),
                )
        except TransactionError as exc:
            raise StorageError(f"{self.path}: cannot replay the log: {exc}") from None
        self._check_chain()
        self._check_last_block(state)
        return state

    def _check_last_block(self, state: LedgerState) -> None:
        last = self._read(
            "SELECT height, log_size, header FROM blocks ORDER BY height DESC LIMIT 1"
        )
        if last is not None:
            header = json.loads(last[2])
            if int(last[1]) != state.size or header["log_root"] != state.root.hex():
                raise StorageError(
                    f"{self.path}: replayed log (size {state.size}, root "
                    f"{state.root.hex()[:16]}…) does not match block {last[0]}"
                )
        elif state.size:
            raise StorageError(f"{self.path}: entries stored without a block")
