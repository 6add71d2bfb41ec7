"""``collect`` (the wait of ``farm build`` and ``farm bench build``) against a real Redis.

No builder runs: the test stores each task state itself, as a worker's result backend
does, and watches what the waiting side sees and when.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from celery import Celery

from farm.cluster import RedisServer, redis_server
from farm.dispatch import RECHECK_S, BuilderRun, collect, dispatch
from farm.keys import KeyPair, generate_key
from farm.queue import make_celery
from farm.registry import BuilderInfo
from farm.task import queue_for
from tests.unit.farm.coordinator._world import envelope, recipe

#: The coordinator key that signs the tasks (no worker runs them here).
COORDINATOR = generate_key()

pytestmark = [pytest.mark.redis]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path / "redis") as s:
        yield s


def _builder(key: KeyPair) -> BuilderInfo:
    now = datetime.now(UTC)
    return BuilderInfo(
        builder_id=key.keyid,
        public_key=key.public_dict(),
        arches=("amd64",),
        hostname="nobody-runs-this",
        pid=0,
        queue=queue_for(key.keyid),
        started_at=now,
        seen_at=now,
    )


class Updates:
    """What ``on_update`` saw: each call's time and the runs' states."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, tuple[str, ...]]] = []

    def __call__(self, runs: Sequence[BuilderRun]) -> None:
        self.calls.append((time.monotonic(), tuple(r.state for r in runs)))

    @property
    def states(self) -> list[tuple[str, ...]]:
        return [states for _, states in self.calls]


def _queued(app: Celery, key: KeyPair) -> tuple[list[BuilderRun], str]:
    build_id = uuid.uuid4().hex
    return dispatch(app, recipe(), "amd64", [_builder(key)], build_id, COORDINATOR), build_id


def _store(app: Celery, run: BuilderRun, key: KeyPair, build_id: str) -> float:
    """Store the run's signed result as the worker would; the time it was stored."""
    payload = {"envelope": envelope(key, recipe(), build_id), "log_tail": ""}
    app.backend.store_result(run.async_result.id, payload, "SUCCESS")
    return time.monotonic()


def test_collect_wakes_once_per_stored_state(server: RedisServer) -> None:
    app = make_celery(server.url)
    key = generate_key()
    runs, build_id = _queued(app, key)
    stored: list[float] = []

    def worker() -> None:
        time.sleep(0.6)
        app.backend.store_result(runs[0].async_result.id, {"pid": 1}, "STARTED")
        time.sleep(0.6)
        stored.append(_store(app, runs[0], key, build_id))

    updates = Updates()
    thread = threading.Thread(target=worker)
    thread.start()
    collect(runs, timeout=30, on_update=updates)
    returned = time.monotonic()
    thread.join()
    assert runs[0].state == "DONE", runs[0].error
    # One look at the start, then one per stored state: woken by them, never polling.
    assert updates.states == [("QUEUED",), ("BUILDING",), ("DONE",)]
    assert returned - stored[0] < 0.5


def test_collect_gives_up_at_its_timeout_and_leaves_runs_open(server: RedisServer) -> None:
    app = make_celery(server.url)
    runs, _ = _queued(app, generate_key())
    updates = Updates()
    start = time.monotonic()
    collect(runs, timeout=1.5, on_update=updates)
    waited = time.monotonic() - start
    assert 1.5 <= waited < 2.5
    assert not runs[0].done and runs[0].state == "QUEUED"
    assert updates.states == [("QUEUED",), ("QUEUED",)]  # at the start and at the deadline


def test_collect_survives_a_redis_restart_while_it_waits(server: RedisServer) -> None:
    app = make_celery(server.url)
    key = generate_key()
    runs, build_id = _queued(app, key)
    stored: list[float] = []

    def restart_then_store() -> None:
        time.sleep(0.5)
        server.stop(signal.SIGKILL)
        time.sleep(0.5)
        server.start()
        time.sleep(0.5)
        stored.append(_store(app, runs[0], key, build_id))

    thread = threading.Thread(target=restart_then_store)
    thread.start()
    collect(runs, timeout=60)
    returned = time.monotonic()
    thread.join()
    assert runs[0].state == "DONE", runs[0].error
    # Subscribed again after the restart: the notice wakes it, not the missed-notice bound.
    assert returned - stored[0] < min(RECHECK_S, 2.0)
