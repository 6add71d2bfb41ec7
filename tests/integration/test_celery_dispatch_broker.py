"""The coordinator's Celery dispatcher against a real Redis that is emptied or away.

- :meth:`CeleryDispatcher.broker_reset` says True exactly once after Redis lost its
  contents (``FLUSHALL``, as a wiped volume leaves it), and never for a restart of an
  append-only Redis, which keeps its data;
- a task sent after Redis was emptied still reaches the builder's queue, though no
  worker declared that queue again;
- with Redis away, sending raises FarmError (the scheduler keeps the task for later)
  and ``broker_reset`` cannot tell (False).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from farm.cluster import RedisServer, redis_server
from farm.coordinator.celery_dispatch import MARKER_KEY, CeleryDispatcher
from farm.coordinator.models import Builder
from farm.errors import FarmError
from farm.keys import generate_key
from farm.task import queue_for
from tests.unit.farm.coordinator._world import NOW, recipe

pytestmark = [pytest.mark.redis]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path / "redis") as s:
        yield s


def _builder() -> Builder:
    key = generate_key()
    return Builder(
        id=key.keyid, public_key=key.public_dict(), hostname="b1", arches=["amd64"],
        enrolled_at=NOW, approved=True, last_seen=NOW,
    )  # fmt: skip


def _queued(client: redis.Redis, builder: Builder) -> list[str]:
    """Build ids of the tasks waiting on ``builder``'s queue."""
    out = []
    for raw in client.lrange(queue_for(builder.id), 0, -1):
        message = json.loads(raw)
        out.append(str(message["headers"]["id"]))
    return out


def test_an_emptied_broker_is_told_once_and_still_gets_the_tasks(server: RedisServer) -> None:
    client = redis.Redis.from_url(server.url)
    dispatcher = CeleryDispatcher(server.url, generate_key())
    builder = _builder()
    assert dispatcher.broker_reset() is False  # the first look sets the marker
    assert client.get(MARKER_KEY) is not None
    dispatcher.send(recipe(), "amd64", builder, "build-one")
    assert len(_queued(client, builder)) == 1
    assert dispatcher.broker_reset() is False

    client.flushall()  # a wiped volume: queues, bindings, the marker, all gone
    assert dispatcher.broker_reset() is True
    assert dispatcher.broker_reset() is False  # told once
    dispatcher.send(recipe(), "amd64", builder, "build-two")
    assert [t.split("-amd64-")[0] for t in _queued(client, builder)] == ["build-two"]


def test_a_restarted_append_only_broker_is_not_a_reset(server: RedisServer) -> None:
    dispatcher = CeleryDispatcher(server.url, generate_key())
    assert dispatcher.broker_reset() is False
    server.stop()
    assert dispatcher.broker_reset() is False  # away: cannot tell
    with pytest.raises(FarmError, match="broker unreachable"):
        dispatcher.send(recipe(), "amd64", _builder(), "build-away")
    server.start()
    assert dispatcher.broker_reset() is False  # the marker survived the restart
