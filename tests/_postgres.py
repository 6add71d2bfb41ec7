"""A throwaway PostgreSQL server in a temporary directory (for coordinator tests)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["have_postgres", "postgres_server"]

_BIN_DIRS = ["/usr/local/bin", "/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin"]


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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a PostgreSQL cluster on loopback; yield its SQLAlchemy URL; remove it after."""
    initdb, pg_ctl = _tool("initdb"), _tool("pg_ctl")
    assert initdb and pg_ctl, "initdb and pg_ctl are needed"
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
        subprocess.run(
            [
                *prefix,
                initdb,
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
        )
        opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off"
        subprocess.run(
            [*prefix, pg_ctl, "-D", str(data), "-l", str(root / "log"), "-w", "-o", opts, "start"],
            check=True,
            capture_output=True,
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


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
