"""A restarted builder takes back the task its killed process left unacknowledged.

Real Redis, real Celery messages; the "killed builder" is a process that takes one
task from a queue without acknowledging it and exits without a word to the broker
(``os._exit``), as a builder killed with SIGKILL does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from builders.requeue import requeue_interrupted
from farm.cluster import RedisServer, redis_server
from farm.queue import make_celery

pytestmark = [pytest.mark.redis]

TAKE_ONE = """
import os, sys
from kombu import Queue
from farm.queue import make_celery

app = make_celery(sys.argv[1])
got = []
conn = app.connection_for_read()
conn.default_channel.basic_qos(0, 1, False)
with conn.Consumer(Queue(sys.argv[2]), callbacks=[lambda _b, m: got.append(m)]):
    conn.drain_events(timeout=20)
    print(got[0].headers["id"], flush=True)
    os._exit(0)  # gone without acknowledging or restoring: a SIGKILL as the broker sees it
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path / "redis") as s:
        yield s


def _take_and_die(url: str, queue: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", TAKE_ONE, url, queue],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout.strip()


def test_the_tasks_a_dead_process_took_from_this_queue_go_back_on_it(
    server: RedisServer,
) -> None:
    app = make_celery(server.url)
    mine, other = "farm.builder.aaaa", "farm.builder.bbbb"
    app.send_task("farm.build", args=[{}], queue=mine, task_id="build-1-amd64-aaaa")
    app.send_task("farm.build", args=[{}], queue=other, task_id="build-1-amd64-bbbb")
    assert _take_and_die(server.url, mine) == "build-1-amd64-aaaa"
    assert _take_and_die(server.url, other) == "build-1-amd64-bbbb"
    client = redis.Redis.from_url(server.url)
    assert client.llen(mine) == 0 and client.hlen("unacked") == 2

    assert requeue_interrupted(app, mine) == 1

    # Back at the head of its own queue, at once (not after the visibility timeout);
    # the other builder's task is left to the other builder.
    assert client.llen(mine) == 1 and client.llen(other) == 0
    message = json.loads(client.lindex(mine, 0) or b"{}")
    assert message["headers"]["id"] == "build-1-amd64-aaaa"
    assert message["headers"]["redelivered"] is True
    left = [json.loads(v)[2] for v in client.hvals("unacked")]
    assert left == [other]
    assert client.zcard("unacked_index") == 1
    assert requeue_interrupted(app, mine) == 0
    assert _take_and_die(server.url, mine) == "build-1-amd64-aaaa"
