"""Pending transactions, in arrival order, bounded in count and bytes.

A transaction stays in the mempool until a committed block holds it or the proposer
finds it no longer valid; :meth:`Mempool.batch` does not remove anything, so a block
that is not decided leaves its transactions for the next proposal.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

__all__ = ["Mempool"]


class Mempool:
    """tx id → tx bytes, oldest first."""

    def __init__(self, max_txs: int, max_bytes: int = 512 * 1024 * 1024) -> None:
        self._txs: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self.max_txs = max_txs
        self.max_bytes = max_bytes

    def __len__(self) -> int:
        return len(self._txs)

    def __contains__(self, tx_id: object) -> bool:
        return tx_id in self._txs

    @property
    def full(self) -> bool:
        """True when no further transaction is accepted."""
        return len(self._txs) >= self.max_txs or self._bytes >= self.max_bytes

    def add(self, tx_id: str, tx: bytes) -> bool:
        """Add a transaction; False if it is already there or the mempool is full."""
        if tx_id in self._txs or self.full:
            return False
        self._txs[tx_id] = tx
        self._bytes += len(tx)
        return True

    def remove(self, tx_ids: Iterable[str]) -> None:
        """Forget these transactions (committed or found invalid)."""
        for tx_id in tx_ids:
            tx = self._txs.pop(tx_id, None)
            if tx is not None:
                self._bytes -= len(tx)

    def batch(self, max_txs: int, max_bytes: int) -> list[tuple[str, bytes]]:
        """The oldest transactions that fit in ``max_txs`` and ``max_bytes`` (at least
        one if any is pending and not larger than ``max_bytes``)."""
        out: list[tuple[str, bytes]] = []
        total = 0
        for tx_id, tx in self._txs.items():
            if len(out) >= max_txs or total + len(tx) > max_bytes:
                break
            out.append((tx_id, tx))
            total += len(tx)
        return out
