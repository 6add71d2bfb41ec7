"""Per-builder broker users on a real Redis: each builder serves its own keyspace only.

A real redis-server gets the ACL users :func:`farm.hosts.broker_acl.acl_file` writes for
a farm of hosts; the coordinator sends a task into builder A's keyspace
(``farm.queue.keyspace_of``) and a real Celery worker, logged in as A's user, runs it
and returns its result, which the coordinator reads. A's credential then tries what a
compromised builder host would: every attempt on another builder's keys, on the
coordinator's, or on the whole database is refused by Redis (NOPERM).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery.result import AsyncResult

from builders.requeue import requeue_interrupted
from farm.cluster import RedisServer, redis_server
from farm.coordinator.celery_dispatch import MARKER_KEY
from farm.hosts.broker_acl import acl_file
from farm.queue import keyspace_of, make_celery
from farm.task import BUILD_TASK_NAME, queue_for

pytestmark = [pytest.mark.redis]

A, B = "a1" * 32, "b2" * 32
PASSWORDS = {"admin": "adm-pw", "coordinator": "coord-pw", "ba": "pw-of-a", "bb": "pw-of-b"}

WORKER = """
import sys
from farm.queue import make_celery, keyspace_of
from farm.task import BUILD_TASK_NAME, queue_for
url, builder = sys.argv[1], sys.argv[2]
app = make_celery(url, keyprefix=keyspace_of(builder))
@app.task(name=BUILD_TASK_NAME)
def build(payload):
    return {"built_by": builder, "payload": payload}
app.Worker(queues=[queue_for(builder)], pool="solo", concurrency=1, without_gossip=True,
           without_mingle=True, without_heartbeat=True, quiet=True, loglevel="WARNING").start()
"""

TAKE_ONE = """
import os, sys
from kombu import Queue
from farm.queue import make_celery, keyspace_of
from farm.task import queue_for
app = make_celery(sys.argv[1], keyprefix=keyspace_of(sys.argv[2]))
got = []
conn = app.connection_for_read()
conn.default_channel.basic_qos(0, 1, False)
with conn.Consumer(Queue(queue_for(sys.argv[2])), callbacks=[lambda _b, m: got.append(m)]):
    conn.drain_events(timeout=20)
    print(got[0].headers["id"], flush=True)
    os._exit(0)
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path / "redis") as s:
        admin = redis.Redis(port=s.port)
        text = acl_file(
            PASSWORDS["admin"],
            PASSWORDS["coordinator"],
            {"ba": (PASSWORDS["ba"], A), "bb": (PASSWORDS["bb"], B)},
        )
        for line in text.splitlines():
            _, name, *rules = line.split()
            if name != "default":  # the test's own connection stays the default user
                admin.execute_command("ACL", "SETUSER", name, *rules)
        yield s


def _url(server: RedisServer, user: str) -> str:
    return f"redis://{user}:{PASSWORDS[user]}@127.0.0.1:{server.port}/0"


def test_a_builder_serves_its_own_keyspace_with_its_own_credential(server: RedisServer) -> None:
    coordinator = make_celery(_url(server, "coordinator"), keyprefix=keyspace_of(A))
    worker = subprocess.Popen([sys.executable, "-c", WORKER, _url(server, "ba"), A])
    try:
        sent = coordinator.send_task(
            BUILD_TASK_NAME, args=[{"n": 1}], queue=queue_for(A), task_id="build-1-amd64-a1"
        )
        assert sent.get(timeout=60) == {"built_by": A, "payload": {"n": 1}}
        state = AsyncResult("build-1-amd64-a1", app=coordinator).state
        assert state == "SUCCESS"
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    client = redis.Redis(port=server.port)
    names = {k.decode() for k in client.keys("*")}
    # Every key the exchange made is in A's keyspace: nothing shared with B.
    assert names and all(n.startswith(keyspace_of(A)) for n in names), names
    assert f"{keyspace_of(A)}celery-task-meta-build-1-amd64-a1" in names


def test_a_restarted_builder_takes_back_its_task_with_its_own_credential(
    server: RedisServer,
) -> None:
    coordinator = make_celery(_url(server, "coordinator"), keyprefix=keyspace_of(A))
    coordinator.send_task(BUILD_TASK_NAME, args=[{}], queue=queue_for(A), task_id="t-a")
    took = subprocess.run(
        [sys.executable, "-c", TAKE_ONE, _url(server, "ba"), A],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert took.stdout.strip() == "t-a"
    mine = make_celery(_url(server, "ba"), keyprefix=keyspace_of(A))
    assert requeue_interrupted(mine, queue_for(A)) == 1
    assert redis.Redis(port=server.port).llen(keyspace_of(A) + queue_for(A)) == 1


@pytest.mark.parametrize(
    ("what", "command"),
    [
        ("wipe the broker", ("FLUSHALL",)),
        ("wipe the database", ("FLUSHDB",)),
        ("list every key", ("KEYS", "*")),
        ("read the configuration", ("CONFIG", "GET", "*")),
        ("change the users", ("ACL", "SETUSER", "ba", "~*")),
        ("read another builder's queue", ("LRANGE", keyspace_of(B) + queue_for(B), "0", "-1")),
        ("push a task to another builder", ("LPUSH", keyspace_of(B) + queue_for(B), "{}")),
        ("steal another builder's unacked task", ("HGETALL", keyspace_of(B) + "unacked")),
        ("write another builder's result", ("SET", f"farm:result:build-1:{B}", "{}")),
        (
            "write another builder's Celery state",
            ("SET", keyspace_of(B) + "celery-task-meta-x", "{}"),
        ),
        ("fake another builder's heartbeat", ("SET", f"farm:builders:{B}", "{}")),
        ("move the coordinator's broker marker", ("DEL", MARKER_KEY)),
        ("a queue outside every keyspace", ("LPUSH", queue_for(B), "{}")),
        (
            "notice another builder's result",
            ("PUBLISH", keyspace_of(B) + "celery-task-meta-x", "{}"),
        ),
        ("stop the broker", ("SHUTDOWN", "NOSAVE")),
    ],
)
def test_a_builder_credential_is_refused_beyond_its_own_keys(
    server: RedisServer, what: str, command: tuple[str, ...]
) -> None:
    a = redis.Redis.from_url(_url(server, "ba"))
    with pytest.raises(redis.exceptions.NoPermissionError):
        a.execute_command(*command)
    # Its own keys, it may.
    assert a.set(f"farm:result:build-1:{A}", "{}") is True
    assert a.llen(keyspace_of(A) + queue_for(A)) == 0


def test_an_unapproved_host_and_a_stranger_may_only_ping(server: RedisServer) -> None:
    admin = redis.Redis(port=server.port)
    admin.execute_command("ACL", "SETUSER", "bb", "resetkeys", "resetchannels", "-@all", "+ping")
    b = redis.Redis.from_url(_url(server, "bb"))
    assert b.ping() is True
    with pytest.raises(redis.exceptions.NoPermissionError):
        b.set(f"farm:builders:{B}", "{}")
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis.from_url(f"redis://ba:wrong@127.0.0.1:{server.port}/0").ping()
