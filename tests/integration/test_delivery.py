"""Builds are never lost and never silently run twice: worker SIGKILL, Redis restart."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import redis

from builders.tasks import completions_key
from farm.cluster import LocalCluster, local_cluster
from farm.dispatch import collect, dispatch
from farm.queue import make_celery
from farm.recipe import load_recipe
from farm.registry import list_builders
from tests.integration.conftest import write_recipe

pytestmark = [pytest.mark.docker, pytest.mark.redis, pytest.mark.image, pytest.mark.slow]

VISIBILITY = 20
FAST_REDELIVERY = {"FARM_VISIBILITY_TIMEOUT": str(VISIBILITY), "FARM_BUILD_MARGIN": "5"}


@pytest.fixture
def slow_recipe(tmp_path: Path, builder_image: str, git_source: dict[str, str]) -> Path:
    return write_recipe(
        tmp_path / "recipes",
        builder_image,
        git_source,
        "sleep 6\nsha256sum data.txt > /out/sum.txt\n",
        ["sum.txt"],
        limits={"timeout": 12},
    )


@pytest.fixture
def cluster(tmp_path: Path, builder_image: str) -> Iterator[LocalCluster]:
    with local_cluster(tmp_path / "cluster", 3, env=FAST_REDELIVERY) as c:
        yield c


def _containers(client: docker.DockerClient, build_id: str) -> int:
    return len(client.containers.list(all=True, filters={"label": f"farm.build-id={build_id}"}))


def test_worker_killed_mid_build_completes_exactly_once(
    cluster: LocalCluster, slow_recipe: Path, docker_client: docker.DockerClient
) -> None:
    recipe = load_recipe(slow_recipe)
    r = redis.Redis.from_url(cluster.redis.url)
    app = make_celery(cluster.redis.url, visibility_timeout=VISIBILITY)
    builders = list_builders(r)
    build_id = uuid.uuid4().hex
    runs = dispatch(app, recipe, "amd64", builders, build_id, cluster.coordinator())
    victim = next(b for b in cluster.builders if b.builder_id == builders[0].builder_id)
    # Wait until the victim's container is running, then kill the worker outright.
    deadline = time.monotonic() + 60
    while _containers(docker_client, build_id) < 3:
        assert time.monotonic() < deadline, "builds did not start"
        time.sleep(0.2)
    cluster.stop_builder(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    cluster.start_builder(victim)
    collect(runs, timeout=VISIBILITY * 4)
    assert [x.state for x in runs] == ["DONE"] * 3, [x.error for x in runs]
    assert time.monotonic() - killed_at >= 1
    digests = {tuple(x.result.digest_set().items()) for x in runs if x.result}
    assert len(digests) == 1
    for b in builders:
        assert int(r.get(completions_key(build_id, b.builder_id)) or 0) == 1
    # Delivering the same task again returns the stored result, without a new build.
    again = dispatch(app, recipe, "amd64", builders[:1], build_id, cluster.coordinator())
    collect(again, timeout=30)
    assert again[0].state == "DONE"
    assert again[0].result is not None and again[0].result.envelope == runs[0].result.envelope  # type: ignore[union-attr]
    assert int(r.get(completions_key(build_id, builders[0].builder_id)) or 0) == 1
    assert _containers(docker_client, build_id) == 0
    # The restarted builder found and removed the container the killed attempt left.
    log = victim.log_path.read_text()
    assert "left by an earlier run" in log or "left by an interrupted attempt" in log


def test_redis_restart_loses_no_queued_build(
    tmp_path: Path, slow_recipe: Path, builder_image: str
) -> None:
    recipe = load_recipe(slow_recipe)
    with local_cluster(tmp_path / "cluster", 3, env=FAST_REDELIVERY, start=False) as cluster:
        # Announce nothing yet: queue the builds while no worker runs.
        from datetime import UTC, datetime

        from farm.keys import load_key
        from farm.registry import BuilderInfo
        from farm.task import queue_for

        infos = []
        for b in cluster.builders:
            key = load_key(b.home / "key.pem")
            now = datetime.now(UTC)
            infos.append(
                BuilderInfo(
                    builder_id=key.keyid,
                    public_key=key.public_dict(),
                    arches=("amd64",),
                    hostname="queued",
                    pid=0,
                    queue=queue_for(key.keyid),
                    started_at=now,
                    seen_at=now,
                )
            )
        app = make_celery(cluster.redis.url, visibility_timeout=VISIBILITY)
        build_ids = [uuid.uuid4().hex for _ in range(2)]
        signer = cluster.coordinator()
        runs = [
            run for bid in build_ids for run in dispatch(app, recipe, "amd64", infos, bid, signer)
        ]
        # Kill Redis without letting it save, then bring it back from its append-only file.
        cluster.redis.stop(signal.SIGKILL)
        cluster.redis.start()
        for b in cluster.builders:
            cluster.start_builder(b)
        cluster.wait_ready()
        collect(runs, timeout=120)
        assert [x.state for x in runs] == ["DONE"] * len(runs), [x.error for x in runs]
