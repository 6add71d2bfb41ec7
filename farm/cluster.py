"""A whole farm on one machine: Redis and N builder workers as real processes.

Used by ``farm up``, by the benchmarks and by the integration tests, so all three run
the same processes a real deployment runs, only on loopback. Each builder has its own
home (its own key); they share one fetch cache and one output store. The builders
run only tasks signed by the cluster's coordinator key (ADR 41): the one the caller
names (``farm up``: the genesis coordinator key), or one made once under ``root``;
whoever sends tasks signs them with :attr:`LocalCluster.coordinator_key`.

Every process is started with :func:`~farm._lifetime.die_with_parent` (start them from
a thread that outlives them), and stopping the cluster also removes the build
containers its builders left (they carry ``farm.builder-id``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

from farm._lifetime import die_with_parent, remove_containers
from farm.errors import ConfigError
from farm.keys import KeyPair, generate_key, load_key, save_key
from farm.ports import free_port, free_port_range
from farm.registry import BuilderInfo, list_builders

__all__ = [
    "BuilderProcess",
    "LocalCluster",
    "RedisServer",
    "free_port",
    "free_port_range",
    "local_cluster",
    "redis_server",
]


@dataclass
class RedisServer:
    """A redis-server process with append-only persistence in ``data_dir``."""

    data_dir: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Its URL, database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15) -> None:
        """Start it and wait until it answers PING."""
        exe = shutil.which("redis-server")
        if exe is None:
            raise ConfigError("redis-server is not installed (apt-get install redis-server)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with (self.data_dir / "redis.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    exe,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--dir",
                    str(self.data_dir),
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "always",
                    "--save",
                    "",
                    "--protected-mode",
                    "yes",
                    "--daemonize",
                    "no",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(),  # noqa: PLW1509 - only prctl, then exec
            )
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if client.ping():
                    return
            except redis.RedisError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise ConfigError(
                    f"redis-server on port {self.port} did not start; see {self.data_dir}/redis.log"
                )
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop it (SIGTERM by default, which lets it flush)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@contextmanager
def redis_server(data_dir: Path, port: int | None = None) -> Iterator[RedisServer]:
    """A running Redis for the duration of the block."""
    server = RedisServer(data_dir, port or free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class BuilderProcess:
    """One ``farm builder run`` process."""

    home: Path
    builder_id: str
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None


@dataclass
class LocalCluster:
    """Redis plus N builder worker processes under one directory."""

    root: Path
    redis: RedisServer
    builders: list[BuilderProcess] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    #: The coordinator's private key: tasks signed by it are the only ones builders run.
    coordinator_key: Path | None = None

    def coordinator(self) -> KeyPair:
        """The coordinator key that signs this cluster's tasks (made once under ``root``
        unless the cluster was given one)."""
        if self.coordinator_key is None:
            self.coordinator_key = self.root / "coordinator.key"
        if not self.coordinator_key.exists():
            save_key(generate_key(), self.coordinator_key)
        return load_key(self.coordinator_key)

    @property
    def coordinator_public(self) -> Path:
        """The coordinator's public key file the builders are configured with."""
        path = self.root / "coordinator.pub"
        public = json.dumps(self.coordinator().public_dict(), sort_keys=True)
        if not path.exists() or path.read_text() != public:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(public)
        return path

    def builder_env(self) -> dict[str, str]:
        """Environment of a builder process: shared cache and store, this cluster's Redis,
        the coordinator key it trusts."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("FARM_")}
        env.update(
            FARM_REDIS_URL=self.redis.url,
            FARM_BUILDER_COORDINATOR_KEY=str(self.coordinator_public),
            FARM_CACHE_DIR=str(self.root / "cache"),
            FARM_STORE_DIR=str(self.root / "store"),
            PYTHONUNBUFFERED="1",
        )
        env.update(self.env)
        return env

    def add_builder(self, name: str) -> BuilderProcess:
        """Create (or reuse) a builder identity under ``root/builders/name``."""
        home = self.root / "builders" / name
        key_path = home / "key.pem"
        key = load_key(key_path) if key_path.exists() else generate_key()
        if not key_path.exists():
            save_key(key, key_path)
        proc = BuilderProcess(home, key.keyid, self.root / "logs" / f"{name}.log")
        self.builders.append(proc)
        return proc

    def start_builder(self, b: BuilderProcess) -> None:
        """Start ``farm builder run`` for ``b``."""
        b.log_path.parent.mkdir(parents=True, exist_ok=True)
        with b.log_path.open("ab") as log:
            b.proc = subprocess.Popen(
                [sys.executable, "-m", "farm.cli", "builder", "run", "--home", str(b.home)],
                env=self.builder_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(),  # noqa: PLW1509 - only prctl, then exec
            )

    def stop_builder(
        self, b: BuilderProcess, sig: int = signal.SIGTERM, timeout: float = 20
    ) -> None:
        """Stop one builder process with ``sig`` and wait for it."""
        if b.proc is None:
            return
        if b.proc.poll() is None:
            b.proc.send_signal(sig)
            try:
                b.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                b.proc.kill()
                b.proc.wait()
        b.proc = None

    def wait_ready(
        self,
        ids: Sequence[str] | None = None,
        timeout: float = 60,
        progress: Callable[[str], None] = lambda _m: None,
    ) -> list[BuilderInfo]:
        """Wait until the given builders (default: all) announce themselves."""
        want = set(ids if ids is not None else [b.builder_id for b in self.builders])
        client = redis.Redis.from_url(self.redis.url)
        deadline = time.monotonic() + timeout
        while True:
            up = [b for b in list_builders(client) if b.builder_id in want]
            if {b.builder_id for b in up} == want:
                return up
            for b in self.builders:
                if b.proc is not None and b.proc.poll() is not None and b.builder_id in want:
                    tail = b.log_path.read_text(errors="replace")[-1500:]
                    raise ConfigError(f"builder {b.builder_id[:12]} exited:\n{tail}")
            if time.monotonic() > deadline:
                raise ConfigError(
                    f"only {len(up)}/{len(want)} builders announced themselves in {timeout}s"
                )
            progress(f"{len(up)}/{len(want)} builders ready")
            time.sleep(0.2)

    def stop(self, timeout: float = 20) -> None:
        """Stop every builder (all at once), remove their build containers, stop Redis.

        A builder in the middle of a build finishes it before it exits (Celery's warm
        shutdown); after ``timeout`` seconds it is killed, and its container removed.
        """
        for b in self.builders:
            if b.proc is not None and b.proc.poll() is None:
                b.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for b in self.builders:
            self.stop_builder(b, timeout=max(0.1, deadline - time.monotonic()))
        for b in self.builders:
            remove_containers({"farm.builder-id": b.builder_id})
        self.redis.stop()


@contextmanager
def local_cluster(
    root: Path,
    n: int,
    *,
    port: int | None = None,
    env: dict[str, str] | None = None,
    start: bool = True,
    coordinator_key: Path | None = None,
) -> Iterator[LocalCluster]:
    """Redis and ``n`` builders under ``root``, stopped when the block ends; the builders
    trust ``coordinator_key`` (default: one made under ``root``)."""
    server = RedisServer(root / "redis", port or free_port())
    server.start()
    cluster = LocalCluster(root, server, env=dict(env or {}), coordinator_key=coordinator_key)
    try:
        for i in range(n):
            b = cluster.add_builder(f"b{i + 1}")
            if start:
                cluster.start_builder(b)
        if start:
            cluster.wait_ready()
        yield cluster
    finally:
        cluster.stop()
