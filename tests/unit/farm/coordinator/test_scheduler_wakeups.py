"""The scheduler's loop acts on events, not on its interval: a requested build is
dispatched, and a build whose results are in is decided and handed to the ledger
publisher, as soon as the scheduler is woken (the API wakes it on both)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from farm.coordinator.scheduler import Scheduler, SchedulerConfig, request_build
from farm.coordinator.staging import Staging
from tests.unit.farm.coordinator._world import NOW, recipe
from tests.unit.farm.coordinator.test_scheduler import (
    KEYS,
    Clock,
    FakeQueue,
    answer,
    build_of,
    enroll,
)

INTERVAL = 60.0
"""Far longer than any wait below: only a wake-up can make the loop act in time."""


def _within(seconds: float, probe: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if probe():
            return True
        time.sleep(0.02)
    return probe()


@pytest.fixture
def running(
    engine: Engine, tmp_path: Path
) -> Iterator[tuple[Scheduler, FakeQueue, Staging, threading.Event]]:
    queue, staging, verified = FakeQueue(), Staging(tmp_path / "staging"), threading.Event()
    config = SchedulerConfig(timeout_margin=60)
    scheduler = Scheduler(engine, staging, queue, config, Clock(), on_verified=verified.set)
    stop = threading.Event()
    thread = threading.Thread(target=scheduler.run, args=(stop, INTERVAL), daemon=True)
    thread.start()
    yield scheduler, queue, staging, verified
    stop.set()
    scheduler.wake()
    thread.join(5)
    assert not thread.is_alive(), "a woken scheduler did not stop"


def test_a_woken_scheduler_dispatches_then_decides_and_wakes_the_publisher(
    running: tuple[Scheduler, FakeQueue, Staging, threading.Event], session: Session
) -> None:
    scheduler, queue, staging, verified = running
    for key in KEYS[:3]:
        enroll(session, key)
    time.sleep(0.2)  # the loop's first pass is over: it now sleeps for INTERVAL
    (build,) = request_build(session, recipe(), NOW)
    assert not _within(0.5, lambda: bool(queue.sent)), "dispatched without a wake-up"
    scheduler.wake()
    assert _within(5, lambda: len(queue.sent) == 3), queue.sent
    for key in KEYS[:3]:
        answer(session, staging, key, build.id)
    assert not verified.is_set()
    scheduler.wake()
    assert verified.wait(5), "the publisher was not woken by a verified build"
    assert build_of(session, build.id).status == "verified"
