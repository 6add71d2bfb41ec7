"""Fixtures of the farm-of-hosts tests: one farm per test session, on pytest-docker.

The farm is the product's own: the cluster directory is made by
:func:`farm.hosts.init.init_cluster` in a temporary directory (with a project name of
this run's own, so that a farm an operator runs is never touched), pytest-docker runs
``docker-compose up -d`` over ``deploy/cluster/docker-compose.yml`` with that directory's
``compose.env``, and :func:`farm.hosts.operate.cluster_up` then does what ``farm cluster
up`` does as the operator (operator token, one enrollment token per builder host,
approval) and waits until every host is healthy. At the end the farm is taken down with
its volumes, builder hosts added by a test included (they live in the directory's
override file, which pytest-docker's own clean-up, run after, does not know).

Tests using ``farm_hosts`` need root (the secrets are owned by the image's farm user),
Docker, docker-compose and the images (``farm cluster up`` builds missing ones).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from farm.hosts.compose import COMPOSE_FILE, build_host_image, ensure_builder_archive
from farm.hosts.init import ClusterDir, init_cluster
from farm.hosts.operate import cluster_down, cluster_up
from tests.support.hosts import FarmHosts


def _say(text: str) -> None:
    print(f"[farm of hosts {time.strftime('%H:%M:%S')}] {text}", flush=True)


@pytest.fixture(scope="session")
def docker_compose_command() -> str:
    return "docker-compose"


@pytest.fixture(scope="session")
def docker_compose_file() -> list[str]:
    return [str(COMPOSE_FILE)]


@pytest.fixture(scope="session")
def docker_compose_project_name() -> str:
    return f"farmtest{os.getpid()}"


@pytest.fixture(scope="session")
def hosts_dir(tmp_path_factory: pytest.TempPathFactory, docker_compose_project_name: str) -> Path:
    """A new cluster directory for this run's project, and the host image built from
    this checkout (a stale image would test other code)."""
    build_host_image(_say)
    archive, image_id = ensure_builder_archive(_say)
    root = tmp_path_factory.mktemp("hosts") / "cluster"
    init_cluster(
        root, builder_archive=archive, builder_image_id=image_id,
        project=docker_compose_project_name,
    )  # fmt: skip
    return root


@pytest.fixture(scope="session")
def docker_setup(hosts_dir: Path) -> list[str]:
    return [f'--env-file "{ClusterDir(hosts_dir).env_file}" up -d']


@pytest.fixture(scope="session")
def docker_cleanup(hosts_dir: Path) -> list[str]:
    return [f'--env-file "{ClusterDir(hosts_dir).env_file}" down -v --remove-orphans -t 10']


@pytest.fixture(scope="session")
def farm_hosts(docker_services: object, hosts_dir: Path) -> Iterator[FarmHosts]:
    """The running farm of hosts, every builder host enrolled and approved."""
    start = time.monotonic()
    try:
        info = cluster_up(hosts_dir, _say)
    except BaseException:
        cluster_down(hosts_dir, _say, volumes=True)
        raise
    _say(f"up and healthy in {time.monotonic() - start:.0f} s")
    try:
        yield FarmHosts(
            info.project, info.dir, info.coordinator_url, info.dist_url,
            info.operator_token, dict(info.builders),
        )  # fmt: skip
    finally:
        cluster_down(hosts_dir, _say, volumes=True)
