"""git for tests: a fixed identity and dates, one-commit repositories, a real git daemon."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from farm.ports import free_port

DATE = "2024-01-02T00:00:00Z"
"""The author and committer date of every commit :func:`git` makes (unless told)."""


def git(repo: Path, *argv: str, date: str = DATE) -> str:
    """``git ARGV`` in ``repo`` as user t, with ``date``, HOME the repo's parent; stdout."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(repo.parent),
        "GIT_AUTHOR_DATE": date,
        "GIT_COMMITTER_DATE": date,
    }
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *argv],
        cwd=repo, check=True, env=env, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip


def commit_all(repo: Path, message: str, *, date: str = DATE) -> str:
    """Commit everything in ``repo`` (``git add -A``); the new commit's id."""
    git(repo, "add", "-A", date=date)
    git(repo, "commit", "-qm", message, date=date)
    return git(repo, "rev-parse", "HEAD")


def new_repo(repo: Path, message: str = "init", *, date: str = DATE) -> str:
    """Make ``repo`` (holding what is already there) a repository on ``main`` with one
    commit of everything; that commit's id."""
    repo.mkdir(parents=True, exist_ok=True)
    git(repo, "init", "-q", "-b", "main", date=date)
    return commit_all(repo, message, date=date)


@contextmanager
def git_daemon(base: Path, *, push: bool = False) -> Iterator[int]:
    """``git daemon`` on 127.0.0.1 serving every repository under ``base`` (pushes too,
    with ``push``); its port. Stopped on exit."""
    port = free_port()
    proc = subprocess.Popen(
        [
            "git", "daemon", "--export-all", "--reuseaddr", "--listen=127.0.0.1",
            *(["--enable=receive-pack"] if push else []),
            f"--port={port}", f"--base-path={base}", str(base),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, "git daemon exited"
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)
