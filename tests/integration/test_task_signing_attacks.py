"""An attacker holding the broker's URL against signed tasks (issue 14 item 1, ADR 41).

Real Redis, two real builder workers (A and B) and real Docker. The attacker talks to
the same Redis with a Celery app of its own, as any builder host can today:

(a) pushes an unsigned task onto B's queue;
(b) pushes a task signed by a key of its own onto B's queue;
(c) replays the coordinator's signed task for A onto B's queue;
(d) writes a Celery FAILURE state for an honest attempt in flight, and a forged result
    under the builder's result key before it builds.

B refuses (a)-(c) before doing anything: no build container is ever created for those
builds, nothing is stored, and its log says why with the build id. (d) changes
nothing: the honest builds finish and agree, each with its builder's signed result.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker
import pytest
import redis
from celery import Celery
from celery.result import AsyncResult

from builders.tasks import result_key
from farm.cluster import LocalCluster, local_cluster
from farm.dispatch import collect, dispatch
from farm.keys import generate_key
from farm.queue import make_celery
from farm.recipe import Recipe, load_recipe
from farm.registry import BuilderInfo, list_builders
from farm.task import BUILD_TASK_NAME, BuildTask, queue_for, sign_task
from tests.integration.conftest import write_recipe

pytestmark = [pytest.mark.docker, pytest.mark.redis, pytest.mark.image, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, builder_image: str) -> Iterator[LocalCluster]:
    with local_cluster(tmp_path_factory.mktemp("attacks"), 2) as c:
        yield c


@pytest.fixture
def recipe(tmp_path: Path, builder_image: str, git_source: dict[str, str]) -> Recipe:
    """A build that runs for a few seconds, long enough to be attacked in flight."""
    return load_recipe(
        write_recipe(
            tmp_path / "recipes",
            builder_image,
            git_source,
            "sleep 4\nsha256sum data.txt > /out/sum.txt\n",
            ["sum.txt"],
            limits={"timeout": 60},
        )
    )


def _builders(cluster: LocalCluster) -> tuple[BuilderInfo, BuilderInfo]:
    running = {b.builder_id: b for b in list_builders(redis.Redis.from_url(cluster.redis.url))}
    a, b = (running[p.builder_id] for p in cluster.builders)
    return a, b


def _push(attacker: Celery, message: object, queue: str, build_id: str) -> AsyncResult:  # type: ignore[type-arg]
    """What anyone with the Redis URL can do: put a message on a builder's queue."""
    return attacker.send_task(
        BUILD_TASK_NAME, args=[message], queue=queue, task_id=f"attack-{build_id}"
    )


def _containers_created(client: docker.DockerClient, build_id: str, since: datetime) -> int:
    events = client.events(
        since=since,
        until=datetime.now(UTC),
        filters={"type": "container", "event": "create", "label": f"farm.build-id={build_id}"},
        decode=True,
    )
    return sum(1 for _ in events)


def _wait_ended(result: AsyncResult, timeout: float = 60) -> str:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while result.state not in ("SUCCESS", "FAILURE"):
        assert time.monotonic() < deadline, f"task {result.id} still {result.state}"
        time.sleep(0.2)
    return str(result.state)


def _log(cluster: LocalCluster, builder_id: str) -> str:
    proc = next(p for p in cluster.builders if p.builder_id == builder_id)
    return proc.log_path.read_text(errors="replace")


def test_b_refuses_unsigned_foreign_and_replayed_tasks(
    cluster: LocalCluster, recipe: Recipe, docker_client: docker.DockerClient
) -> None:
    a, b = _builders(cluster)
    attacker = make_celery(cluster.redis.url)
    r = redis.Redis.from_url(cluster.redis.url)
    since = datetime.now(UTC)
    ids = {
        name: f"attack{name}{uuid.uuid4().hex[:12]}" for name in ("unsigned", "foreign", "replay")
    }
    for_b = {n: BuildTask.create(recipe, "amd64", b.builder_id, i) for n, i in ids.items()}
    messages: dict[str, Any] = {
        # (a) the task as it was sent before tasks were signed
        "unsigned": for_b["unsigned"].model_dump(mode="json"),
        # (b) signed, well formed, for B, but with the attacker's own key
        "foreign": sign_task(for_b["foreign"], generate_key()),
        # (c) the coordinator's genuine signed task for A, put on B's queue
        "replay": sign_task(
            BuildTask.create(recipe, "amd64", a.builder_id, ids["replay"]), cluster.coordinator()
        ),
    }
    results = {n: _push(attacker, m, queue_for(b.builder_id), ids[n]) for n, m in messages.items()}
    why = {
        "unsigned": "task is not signed",
        "foreign": "is not signed by coordinator key",
        "replay": f"addressed to builder {a.builder_id[:12]}",
    }
    for name, result in results.items():
        assert _wait_ended(result) == "FAILURE", name
        assert type(result.result).__name__ == "TaskRefusedError", (name, result.result)
        assert why[name] in str(result.result)
        build_id = ids[name]
        assert r.get(result_key(build_id, b.builder_id)) is None
        assert r.get(result_key(build_id, a.builder_id)) is None
        assert _containers_created(docker_client, build_id, since) == 0, name
        log = _log(cluster, b.builder_id)
        refusal = [line for line in log.splitlines() if build_id in line and "refused" in line]
        assert refusal and all("WARNING" in line for line in refusal), log[-3000:]
        assert not [line for line in log.splitlines() if build_id in line and "building" in line]
    # A never saw the replayed task: it was only ever on B's queue.
    assert ids["replay"] not in _log(cluster, a.builder_id)


def test_a_forged_failure_state_and_result_key_change_nothing(
    cluster: LocalCluster, recipe: Recipe, docker_client: docker.DockerClient
) -> None:
    a, b = _builders(cluster)
    attacker = make_celery(cluster.redis.url)
    r = redis.Redis.from_url(cluster.redis.url)
    build_id = uuid.uuid4().hex
    # A result key for B written before B builds: not B's signed result, so not B's answer.
    forged = {"envelope": {"payload": "e30=", "payloadType": "x", "signatures": []}}
    r.set(result_key(build_id, b.builder_id), json.dumps(forged))
    app = make_celery(cluster.redis.url)
    runs = dispatch(app, recipe, "amd64", [a, b], build_id, cluster.coordinator())
    deadline = time.monotonic() + 60
    while not docker_client.containers.list(
        filters={"label": [f"farm.build-id={build_id}", f"farm.builder-id={a.builder_id}"]}
    ):
        assert time.monotonic() < deadline, "A's build did not start"
        time.sleep(0.1)
    # (d) While A builds, the attacker says A's task failed.
    attacker.backend.mark_as_failure(runs[0].async_result.id, RuntimeError("attacker: A failed"))
    assert AsyncResult(runs[0].async_result.id, app=attacker).state == "FAILURE"
    collect(runs, timeout=180)
    assert [run.state for run in runs] == ["DONE", "DONE"], [run.error for run in runs]
    assert all(run.result is not None for run in runs)
    digests = [run.result.digest_set() for run in runs if run.result is not None]
    assert digests[0] == digests[1] and "sum.txt" in digests[0]
    # B built and stored its own signed result over the forged one.
    stored = json.loads(r.get(result_key(build_id, b.builder_id)) or b"{}")
    assert stored["envelope"] == runs[1].result.envelope  # type: ignore[union-attr]
    assert "the stored result is not this builder's signed one" in _log(cluster, b.builder_id)
