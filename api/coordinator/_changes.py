"""Commits to the coordinator's database, as events an API request can wait for.

:func:`commits_of` gives the one :class:`CommitFeed` of an engine. Every commit of a
session bound to that engine, in this process and whichever thread makes it (the
scheduler, the ledger publisher, the report worker, a route), advances the feed and
wakes its waiters: coroutines on an event loop, such as the long-poll of
``GET /v1/builds/{id}``. The feed says only *that* something was committed; a waiter
reads what it waits for again and compares.

Invariants: a waiter that read the database after taking :attr:`CommitFeed.count` never
misses a commit made after its read (it is woken at once, or its wait returns at once);
a commit made by another process wakes nobody, so every wait is bounded. Reading does
not commit (a reader that did would wake every other reader, and itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

__all__ = ["CommitFeed", "commits_of"]


class CommitFeed:
    """A count of commits, and the coroutines waiting for the next one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    @property
    def count(self) -> int:
        """Commits so far; take it before reading, hand it to :meth:`wait` after."""
        return self._count

    def notify(self) -> None:
        """A commit happened: wake every waiter (callable from any thread)."""
        with self._lock:
            self._count += 1
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            with contextlib.suppress(RuntimeError):  # its loop has closed: nobody waits
                loop.call_soon_threadsafe(_resolve, future)

    async def wait(self, seen: int, timeout: float) -> bool:
        """Wait until there were commits after count ``seen`` or ``timeout`` seconds pass;
        whether there were."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        waiter = (loop, future)
        with self._lock:
            if self._count != seen:
                return True
            self._waiters.append(waiter)
        try:
            done, _ = await asyncio.wait({future}, timeout=timeout)
            return bool(done)
        finally:
            with self._lock, contextlib.suppress(ValueError):
                self._waiters.remove(waiter)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


_FEEDS: weakref.WeakKeyDictionary[Engine, CommitFeed] = weakref.WeakKeyDictionary()
_FEEDS_LOCK = threading.Lock()


def _committed(session: Session) -> None:
    bind = session.bind
    feed = _FEEDS.get(bind) if isinstance(bind, Engine) else None
    if feed is not None:
        feed.notify()


def commits_of(engine: Engine) -> CommitFeed:
    """The feed of ``engine``'s commits in this process (made on first use)."""
    with _FEEDS_LOCK:
        if not event.contains(Session, "after_commit", _committed):
            event.listen(Session, "after_commit", _committed)
        feed = _FEEDS.get(engine)
        if feed is None:
            feed = _FEEDS[engine] = CommitFeed()
        return feed
