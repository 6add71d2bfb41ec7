"""The replay check of signed builder requests, in the coordinator's database.

A signed request (:mod:`farm.coordinator.auth`) is accepted within ``window`` seconds
of its timestamp; inside that window the same (builder, nonce) is accepted once. The
pairs are rows of ``seen_request`` (:class:`~farm.coordinator.models.SeenRequest`),
so the check survives a restart and holds across coordinator replicas on one database.

Invariants:

- Acceptance is one INSERT: the table's primary key (builder id, nonce) lets exactly
  one of two racing inserts succeed; the loser is refused as a replay. There is no
  read-then-write window.
- A row is pruned only when its request could no longer pass the timestamp check
  (older than twice the window, so replicas whose clocks differ by less than a window
  still refuse it). Pruning runs at most once per ``prune_every`` seconds per process.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from farm.coordinator.auth import SignedRequest
from farm.coordinator.errors import AuthenticationError
from farm.coordinator.models import SeenRequest

__all__ = ["ReplayGuard"]


@dataclass
class ReplayGuard:
    """Accept each signed (builder, nonce) once, in the database of ``engine``."""

    engine: Engine
    prune_every: float = 60.0
    _pruned: float = field(default=float("-inf"), init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def check_and_add(self, req: SignedRequest, now: float, window: float) -> None:
        """Record ``req``'s (builder, nonce); raise :class:`AuthenticationError` if it was
        already recorded. Call after the signature and timestamp were verified."""
        self._prune(now, window)
        row = SeenRequest(builder_id=req.builder_id, nonce=req.nonce, timestamp=int(req.timestamp))
        with Session(self.engine) as session:
            session.add(row)
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                raise AuthenticationError(
                    "this signed request was already received (replay)"
                ) from None

    def _prune(self, now: float, window: float) -> None:
        with self._lock:
            if time.monotonic() - self._pruned < self.prune_every:
                return
            self._pruned = time.monotonic()
        with Session(self.engine) as session:
            session.exec(
                delete(SeenRequest).where(col(SeenRequest.timestamp) < int(now - 2 * window))
            )
            session.commit()
