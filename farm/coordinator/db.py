"""The coordinator's database: an engine from a URL, its tables, and sessions.

SQLite by default (``sqlite:///path/farm.db``), PostgreSQL by URL
(``postgresql+psycopg://user@host/db``). SQLite runs in WAL mode with foreign keys on,
and its connections may cross threads (the API serves requests from a thread pool;
each request has its own session).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlmodel import Session, SQLModel, create_engine

from farm.coordinator import models as _models  # registers the tables
from farm.errors import ConfigError

__all__ = ["DEFAULT_DB_URL", "create_tables", "make_engine", "session_scope"]

DEFAULT_DB_URL = "sqlite:///farm-coordinator.db"

del _models


def make_engine(url: str = DEFAULT_DB_URL, *, echo: bool = False) -> Engine:
    """An engine for ``url``; raise :class:`ConfigError` for a URL that cannot be used."""
    kwargs: dict[str, Any] = {"echo": echo}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False}
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(url, **kwargs)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise ConfigError(f"database URL {url!r} cannot be used: {exc}") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def create_tables(engine: Engine) -> None:
    """Create every table that does not exist yet.

    Two processes starting on one new database (``farm serve`` and ``farm operator``)
    may both see a table missing and both create it; the loser sees "already exists"
    and simply checks again.
    """
    attempts = 20  # the other process creates tables one by one; each may collide
    for attempt in range(attempts):
        try:
            SQLModel.metadata.create_all(engine)
            return
        except OperationalError as exc:
            if "already exists" in str(exc.orig) and attempt < attempts - 1:
                time.sleep(0.05)
                continue
            raise ConfigError(f"cannot create the coordinator's tables: {exc.orig}") from None


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits when the block ends normally and rolls back otherwise."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
