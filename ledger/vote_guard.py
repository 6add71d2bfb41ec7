"""Double-sign protection: a validator never signs two different values for one
(height, round, step), not even across a crash.

Both guards implement :class:`ledger.consensus.VoteGuard`. :class:`SqliteVoteGuard`
commits each choice in SQLite (WAL journal, ``synchronous=FULL``, so the commit is
fsynced) before :meth:`~SqliteVoteGuard.record` returns; the consensus machine only
signs after that. Recording the same value twice is allowed (a restarted validator may
re-sign the vote it already sent); a different one raises :class:`DoubleSignError`.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ledger.errors import ConsensusError, DoubleSignError

__all__ = ["MemoryVoteGuard", "SqliteVoteGuard"]

_NIL = "nil"


def _describe(value: str) -> str:
    return value if value == _NIL else value[:16] + "…"


def _conflict(height: int, round: int, step: str, had: str, want: str) -> DoubleSignError:
    return DoubleSignError(
        f"already signed {step} {_describe(had)} at height {height} round {round}; "
        f"refusing to sign {_describe(want)}"
    )


class MemoryVoteGuard:
    """In-memory guard for tests and simulations (survives a restart of the state
    machine, not of the process)."""

    def __init__(self) -> None:
        self._signed: dict[tuple[int, int, str], str] = {}

    def record(self, height: int, round: int, step: str, value_hash: bytes | None) -> None:
        """See :class:`ledger.consensus.VoteGuard`."""
        value = _NIL if value_hash is None else value_hash.hex()
        had = self._signed.setdefault((height, round, step), value)
        if had != value:
            raise _conflict(height, round, step, had, value)

    def prune(self, below_height: int) -> None:
        """Forget heights below ``below_height`` (they are decided and certified)."""
        for slot in [s for s in self._signed if s[0] < below_height]:
            del self._signed[slot]


class SqliteVoteGuard:
    """Guard backed by one SQLite file; each record is a fsynced transaction."""

    def __init__(self, path: Path) -> None:
        try:
            self._db = sqlite3.connect(path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS signed ("
                " height INTEGER NOT NULL, round INTEGER NOT NULL, step TEXT NOT NULL,"
                " value TEXT NOT NULL, PRIMARY KEY (height, round, step))"
            )
        except sqlite3.Error as exc:
            raise ConsensusError(f"{path}: cannot open the vote guard: {exc}") from None
        self._path = path

    def record(self, height: int, round: int, step: str, value_hash: bytes | None) -> None:
        """See :class:`ledger.consensus.VoteGuard`."""
        value = _NIL if value_hash is None else value_hash.hex()
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT value FROM signed WHERE height=? AND round=? AND step=?",
                    (height, round, step),
                ).fetchone()
                if row is None:
                    self._db.execute(
                        "INSERT INTO signed (height, round, step, value) VALUES (?, ?, ?, ?)",
                        (height, round, step, value),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise ConsensusError(f"{self._path}: cannot record a vote: {exc}") from None
        if row is not None and row[0] != value:
            raise _conflict(height, round, step, str(row[0]), value)

    def prune(self, below_height: int) -> None:
        """Forget heights below ``below_height`` (they are decided and certified)."""
        try:
            self._db.execute("DELETE FROM signed WHERE height < ?", (below_height,))
        except sqlite3.Error as exc:
            raise ConsensusError(f"{self._path}: cannot prune the vote guard: {exc}") from None

    def close(self) -> None:
        """Close the database."""
        self._db.close()
