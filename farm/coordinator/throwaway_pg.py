"""Throwaway PostgreSQL for benchmarks and tests: a local cluster, a scratch database.

:func:`throwaway_postgres` starts a PostgreSQL cluster of its own (Debian's ``initdb``
and ``pg_ctl``) in a temporary directory, listening on loopback on a free port, and
removes it afterwards: nothing of it outlives the ``with`` block. :func:`scratch_database`
creates a fresh, uniquely named database on any server and drops it afterwards, so that
a benchmark given someone's server never touches their data.

Both raise :class:`~farm.errors.ConfigError` with a message that says what is missing.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from farm.errors import ConfigError
from farm.ports import free_port as _free_port

__all__ = ["have_postgres", "scratch_database", "server_url", "throwaway_postgres"]

#: Where Debian keeps each installed major version's server binaries; newest first.
_BIN_DIRS = [
    "/usr/local/bin",
    *(str(p) for p in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)),
]


def _tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in _BIN_DIRS:
        if Path(d, name).is_file():
            return str(Path(d, name))
    return None


def have_postgres() -> bool:
    """Whether ``initdb`` and ``pg_ctl`` are on this machine."""
    return _tool("initdb") is not None and _tool("pg_ctl") is not None


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _run(argv: list[str], what: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ConfigError(
            f"{what} failed ({proc.returncode}): {(proc.stderr or proc.stdout)[-800:]}"
        )


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    """Start a PostgreSQL cluster on loopback; yield its SQLAlchemy URL; remove it after.

    Raises:
        ConfigError: ``initdb``/``pg_ctl`` are not installed, or the cluster did not start.
    """
    initdb, pg_ctl = _tool("initdb"), _tool("pg_ctl")
    if not (initdb and pg_ctl):
        raise ConfigError(
            "a local PostgreSQL needs initdb and pg_ctl (Debian: apt-get install postgresql); "
            "or give the URL of a server"
        )
    root = Path(tempfile.mkdtemp(prefix="farm-pg-"))
    # PostgreSQL refuses to run as root: run it as the postgres (or nobody) user then.
    prefix: list[str] = []
    if os.geteuid() == 0:
        user = "postgres" if _user_exists("postgres") else "nobody"
        shutil.chown(root, user)
        prefix = ["runuser", "-u", user, "--"]
    port = _free_port()
    data = root / "data"
    try:
        _run(
            [*prefix, initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
             "--no-sync"],
            "initdb",
        )  # fmt: skip
        opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off"
        _run(
            [*prefix, pg_ctl, "-D", str(data), "-l", str(root / "log"), "-w", "-o", opts, "start"],
            "pg_ctl start",
        )
        try:
            yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        finally:
            subprocess.run(
                [*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
                check=False,
                capture_output=True,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def server_url(url: str) -> URL:
    """``url`` parsed; raise :class:`ConfigError` unless it names a PostgreSQL server."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"not a database URL: {url!r} ({exc})") from None
    if parsed.get_backend_name() != "postgresql":
        raise ConfigError(
            f"not a PostgreSQL URL: {url!r} (expected postgresql+psycopg://user@host:port/db)"
        )
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


@contextmanager
def scratch_database(url: str, prefix: str = "farm_scratch") -> Iterator[str]:
    """Create a new empty database on the server of ``url``; yield its URL; drop it after.

    The database named in ``url`` is only used to connect (as ``CREATE DATABASE`` must);
    the role needs the ``CREATEDB`` privilege.

    Raises:
        ConfigError: ``url`` is not a PostgreSQL URL, the server cannot be reached, or
            the database cannot be created.
    """
    server = server_url(url)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    shown = server.render_as_string(hide_password=True)
    admin = create_engine(server, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    try:
        try:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise ConfigError(f"cannot create a scratch database on {shown}: {reason}") from None
        try:
            yield server.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
