"""Fixtures for integration tests: the real builder image, real Redis, real builders."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import docker
import pytest
import uvicorn
import yaml

from builders.arch import buildable_arches
from farm.cluster import LocalCluster, local_cluster
from tests.support.git import new_repo
from tests.support.ledger_testnet import LedgerTestnet

REPO = Path(__file__).resolve().parents[2]

#: Marks a module that runs arm64 containers: only where this host can (setup.sh
#: registers the handler wherever the kernel allows; CI's machine does).
NEEDS_ARM64 = pytest.mark.skipif(
    "arm64" not in buildable_arches(),
    reason="this host cannot run arm64 containers: no qemu-aarch64 binfmt handler with "
    "the F flag (deploy/builder-image/enable-arm64.sh registers it)",
)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """A client of the machine's Docker Engine (tests fail, never skip, without one)."""
    client = docker.from_env()
    client.ping()
    yield client
    client.close()


@pytest.fixture(scope="session")
def builder_image() -> str:
    """The reproducible builder base image's digest (built here if absent)."""
    from builders.image import build_builder_image

    return build_builder_image()


@pytest.fixture
def git_source(tmp_path: Path) -> dict[str, str]:
    """A local git repository with one commit; returns a recipe ``source`` for it."""
    repo = tmp_path / "upstream"
    repo.mkdir()
    (repo / "hello.c").write_text('#include <stdio.h>\nint main(void){puts("hello");return 0;}\n')
    (repo / "data.txt").write_text("some data\n")
    commit = new_repo(repo, date="2024-01-01T00:00:00Z")
    return {"type": "git", "url": str(repo), "commit": commit}


def write_recipe(
    directory: Path,
    image: str,
    source: dict[str, str],
    command: str,
    outputs: list[str],
    name: str = "demo",
    version: str = "1.0",
    **extra: Any,
) -> Path:
    """Write a recipe file ``directory/name/version.yaml`` and return its path."""
    data: dict[str, Any] = {
        "name": name,
        "version": version,
        "source": source,
        "image": image,
        "architectures": ["amd64"],
        "build": {"command": command, "env": {"TZ": "UTC", "SOURCE_DATE_EPOCH": "1700000000"}},
        "outputs": [{"path": p} for p in outputs],
    }
    data.update(extra)
    path = directory / name / f"{version}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def testnet4(tmp_path: Path) -> Iterator[LedgerTestnet]:
    """A fresh four-validator testnet (keys and genesis; no process started yet)."""
    t = LedgerTestnet(tmp_path / "net", 4)
    try:
        yield t
    finally:
        t.close()


@pytest.fixture(scope="module")
def cluster3(
    tmp_path_factory: pytest.TempPathFactory, builder_image: str
) -> Iterator[LocalCluster]:
    """Redis and three builder workers (separate processes, separate keys)."""
    root = tmp_path_factory.mktemp("cluster")
    with local_cluster(root, 3) as cluster:
        yield cluster


@contextmanager
def serve(app: Any, *, lifespan: bool = False) -> Iterator[str]:
    """Run ``app`` under a real uvicorn on a free loopback port, in a thread; with
    ``lifespan`` its startup and shutdown run too (the coordinator's worker threads)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="on" if lifespan else "off")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
