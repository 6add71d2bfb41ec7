"""The coordinator's database: an engine from a URL, its tables, and sessions.

SQLite by default (``sqlite:///path/farm.db``), PostgreSQL by URL
(``postgresql+psycopg://user@host/db``). SQLite runs in WAL mode with foreign keys on,
and its connections may cross threads (the API serves requests from a thread pool;
each request has its own session). The schema is managed by Alembic migrations
(``farm.coordinator.migrations``); :func:`create_tables` upgrades to the newest.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlmodel import Session, create_engine

from farm.coordinator import models as _models  # registers the tables
from farm.errors import ConfigError

__all__ = [
    "DEFAULT_DB_URL",
    "FIRST_REVISION",
    "MIGRATIONS",
    "create_tables",
    "make_engine",
    "schema_revision",
    "session_scope",
]

DEFAULT_DB_URL = "sqlite:///farm-coordinator.db"
MIGRATIONS = "farm.coordinator:migrations"
"""Where the Alembic scripts are (a package resource, shipped in the wheel)."""
FIRST_REVISION = "0001"
"""The schema before migrations existed; such a database is stamped with it."""
_PG_LOCK = 0x6661726D  # "farm": the advisory lock key migrations take on PostgreSQL

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
    """Bring the database to the newest schema revision; create it when it is empty.

    Runs the Alembic migrations in ``farm/coordinator/migrations``: an empty database
    is built revision by revision; one made before migrations existed (tables but no
    ``alembic_version``) is the first revision and is stamped so, then upgraded. Two
    processes starting on one database (``farm serve`` and ``farm operator``) take
    turns: a PostgreSQL advisory lock, or a lock file beside a SQLite file.

    Raises:
        ConfigError: the database cannot be reached or migrated; the message says why.
    """
    from alembic import command
    from alembic.config import Config
    from alembic.util import CommandError

    try:
        with _migration_lock(engine), engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK})
            config = Config()
            config.set_main_option("script_location", MIGRATIONS)
            config.attributes["connection"] = conn
            tables = set(inspect(conn).get_table_names())
            if "builder" not in tables:  # empty, or its tables were dropped: start over
                if "alembic_version" in tables:
                    conn.execute(text("DELETE FROM alembic_version"))
            elif "alembic_version" not in tables:
                command.stamp(config, FIRST_REVISION)
            command.upgrade(config, "head")
            if conn.dialect.name == "sqlite":
                # The planner's statistics (PostgreSQL keeps its own): without them
                # SQLite cannot tell a name (a few attestations) from a status (all of
                # them) and walks every attestation in list order to find a few.
                conn.execute(text("PRAGMA analysis_limit=1000"))
                conn.execute(text("ANALYZE"))
    except (SQLAlchemyError, CommandError) as exc:
        why = getattr(exc, "orig", None) or exc
        raise ConfigError(f"cannot migrate the coordinator's database: {why}") from None


def schema_revision(engine: Engine) -> str | None:
    """The revision the database is at (None: not under migrations yet)."""
    from alembic.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    path = engine.url.database if engine.dialect.name == "sqlite" else None
    if not path or path == ":memory:" or path.startswith("file:"):
        yield
        return
    with Path(f"{path}.migrate-lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


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
