"""What the validator's HTTP layer and catch-up need of a running validator, as narrow
Protocols: :mod:`ledger.http` and :mod:`ledger.sync` depend on these, and
:class:`ledger.node.Node` satisfies both, so neither imports the node.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

from farm.health import Check
from ledger.block import Block, CommitCertificate, ValidatorSet
from ledger.mempool import Mempool
from ledger.settings import NodeSettings
from ledger.state import LedgerState
from ledger.storage import LedgerStore

__all__ = ["CatchUpTarget", "CommitInfo", "ServedLedger"]


@dataclass(frozen=True)
class CommitInfo:
    """Where a committed transaction landed."""

    index: int
    height: int


class ServedLedger(Protocol):
    """What ``GET``/``POST /v1/...`` read and submit to (:mod:`ledger.http`)."""

    settings: NodeSettings
    store: LedgerStore
    state: LedgerState
    validators: ValidatorSet
    mempool: Mempool
    height: int

    def height_of(self, index: int) -> int:
        """The height of the block holding log entry ``index`` (0 if unknown)."""
        ...

    def latest_note(self) -> tuple[int, str] | None:
        """(tree size, signed note) of the latest stored checkpoint, if any."""
        ...

    async def wait_checkpoint(self, size: int, timeout: float) -> None:
        """Wait until a co-signed checkpoint covers ``size`` entries (or time out)."""
        ...

    def lookup(self, tid: str) -> CommitInfo | None:
        """Where a committed transaction is, or None."""
        ...

    def submit(self, tx: bytes) -> tuple[str, asyncio.Future[CommitInfo]]:
        """Admit a checked transaction; its id and a future for its commit."""
        ...

    def status(self) -> dict[str, Any]:
        """What ``GET /v1/status`` shows."""
        ...

    def metrics_snapshot(self, since: int = 0) -> dict[str, Any]:
        """What ``GET /v1/metrics`` shows (heights after ``since``)."""
        ...

    def readiness(self) -> list[Check]:
        """What ``GET /readyz`` checks (:func:`farm.health.validator_checks`)."""
        ...


class CatchUpTarget(Protocol):
    """What catch-up reads and commits through (:mod:`ledger.sync`)."""

    state: LedgerState
    validators: ValidatorSet
    height: int
    last_hash: bytes
    peer_heights: dict[str, int]
    http_addr: dict[str, str]

    def check_block(self, block: Block, state: LedgerState, prev_hash: bytes) -> str | None:
        """Why ``block`` cannot follow ``prev_hash`` on ``state`` (None if it can)."""
        ...

    def commit(self, block: Block, cert: CommitCertificate) -> None:
        """Make ``block`` final."""
        ...

    def store_checkpoint(self, note: str) -> bool:
        """Keep a trusted checkpoint fetched from a peer if it matches our log."""
        ...

    def after_sync(self) -> None:
        """Join consensus at the next height."""
        ...
