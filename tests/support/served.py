"""A real ``farm serve`` for integration tests, alone or with approved builders.

:class:`Serve` is a restartable coordinator process; :func:`served_farm` starts one on
a fresh SQLite database with Redis and ``builders`` builder workers, each enrolled with a
one-time token (``farm builder enroll``), approved by the operator (``farm operator
approve``) and started, as an operator brings up a farm.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx

from farm.cluster import LocalCluster, local_cluster
from farm.coordinator import service
from farm.coordinator.db import create_tables, make_engine, session_scope
from farm.coordinator.models import utcnow
from farm.ports import free_port

T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, every: float = 0.5) -> T:
    """Poll ``probe`` until it returns something other than None."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def farm_cli(*argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``farm ARGV`` as a process, wide output, its stdout and stderr captured."""
    return subprocess.run(
        [sys.executable, "-m", "farm.cli", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )


@dataclass
class Serve:
    """A restartable ``farm serve`` process."""

    argv: list[str]
    env: dict[str, str]
    log_path: Path
    url: str
    proc: subprocess.Popen[bytes] | None = None

    def start(self, http: httpx.Client) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        proc = self.proc

        def up() -> bool | None:
            try:
                return http.get("/v1/builders").status_code == 200 or None
            except httpx.HTTPError:
                assert proc.poll() is None, self.log_path.read_text()
                return None

        wait_for("farm serve", up, 30, 0.2)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


@dataclass
class ServedFarm:
    """``farm serve`` with its approved builders: the URL, an operator token, the parts."""

    url: str
    token: str
    root: Path
    cluster: LocalCluster
    http: httpx.Client
    serve: Serve


@contextmanager
def served_farm(
    root: Path,
    *,
    label: str,
    serve_args: Sequence[str] = (),
    serve_env: dict[str, str] | None = None,
    builders: int = 3,
    operator: tuple[Path, Path] | None = None,
) -> Iterator[ServedFarm]:
    """``farm serve`` on ``root``'s SQLite database, Redis and ``builders`` approved
    builders, all ready; stopped on exit.

    ``serve_args`` are added to ``farm serve``'s command line, ``serve_env`` to its
    environment (which keeps no ``FARM_`` variable of ours); reports go to
    ``root/reports``, the log to ``root/serve.log``. Builder n is approved in domain
    ``local-n``; with ``operator`` (its key and the ledger genesis: a coordinator with a
    ledger), the enroll transaction is signed by ``farm operator approve --key``, as an
    operator does where they work.
    """
    db = f"sqlite:///{root / 'coordinator.db'}"
    engine = make_engine(db)
    create_tables(engine)
    with session_scope(engine) as session:
        token = service.create_operator_token(session, utcnow(), label)
        enrollment = [
            service.issue_enrollment_token(session, utcnow()).token for _ in range(builders)
        ]
    engine.dispose()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"FARM_COORDINATOR_URL": url, "FARM_HEARTBEAT_INTERVAL": "1"}
    # The builders trust the key the coordinator signs tasks with (ADR 41): the one
    # serve_args name, else one the cluster makes.
    args = list(serve_args)
    given = Path(args[args.index("--coordinator-key") + 1]) if "--coordinator-key" in args else None
    with local_cluster(
        root / "cluster", builders, env=env, start=False, coordinator_key=given
    ) as cluster:
        if given is None:
            cluster.coordinator()
            args += ["--coordinator-key", str(cluster.coordinator_key)]
        argv = [
            sys.executable, "-m", "farm.cli", "serve", "--db", db, "--port", str(port),
            "--staging", str(root / "staging"), "--redis-url", cluster.redis.url,
            "--log-level", "warning", *args,
        ]  # fmt: skip
        environment = {
            **{k: v for k, v in os.environ.items() if not k.startswith("FARM_")},
            "FARM_COORDINATOR_REPORTS_DIR": str(root / "reports"),
            "FARM_COORDINATOR_HEARTBEAT_WITHIN": "30",
            "FARM_COORDINATOR_SCHEDULE_INTERVAL": "0.5",
            **(serve_env or {}),
        }
        serve = Serve(argv, environment, root / "serve.log", url)
        http = httpx.Client(base_url=url, timeout=30)
        try:
            serve.start(http)
            signing = [] if operator is None else [
                "--key", str(operator[0]), "--genesis", str(operator[1]),
            ]  # fmt: skip
            for n, (b, secret) in enumerate(zip(cluster.builders, enrollment, strict=True), 1):
                proc = farm_cli(
                    "builder", "enroll", "--coordinator", url, "--token", secret,
                    "--home", str(b.home),
                )  # fmt: skip
                assert proc.returncode == 0, proc.stdout + proc.stderr
                assert "pending approval" in proc.stdout
                proc = farm_cli(
                    "operator", "approve", b.builder_id, "--coordinator", url,
                    "--operator-token", token, "--domain", f"local-{n}", *signing,
                )  # fmt: skip
                assert proc.returncode == 0, proc.stdout + proc.stderr
                cluster.start_builder(b)
            cluster.wait_ready(timeout=60)
            yield ServedFarm(url, token, root, cluster, http, serve)
        finally:
            http.close()
            serve.stop()
