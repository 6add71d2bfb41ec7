"""The scheduler against dead builder hosts and a broker that is away or emptied.

A builder that stops beating is given up as ``lost`` after ``lost_after`` seconds and
replaced (not at the recipe timeout); a coordinator that was itself down does not give
up its builders before hearing from them; a task the broker did not take is sent again
on the next passes; a broker that lost its contents gets every outstanding task again.
Real database, fake queue.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session

from farm.coordinator import service
from farm.coordinator.scheduler import Scheduler, SchedulerConfig, request_build
from farm.coordinator.staging import Staging
from tests.unit.farm.coordinator._world import NOW, recipe
from tests.unit.farm.coordinator.test_scheduler import (
    KEYS,
    Clock,
    FakeQueue,
    answer,
    attempts,
    build_of,
    enroll,
    make,
)

LOST_AFTER = 20.0


def test_a_builder_that_stops_beating_is_lost_and_replaced_long_before_the_timeout(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    scheduler, queue, clock, staging = make(engine, tmp_path, lost_after=LOST_AFTER)
    for key in KEYS[:4]:
        enroll(session, key)
    (build,) = request_build(session, recipe(), NOW)
    scheduler.tick()
    chosen = [b for _, b in queue.sent]
    dead, *alive = chosen
    spare = next(k.keyid for k in KEYS[:4] if k.keyid not in chosen)
    keys = {k.keyid: k for k in KEYS}

    def run_until(seconds: float) -> None:
        """Passes every 2 s of the clock up to ``seconds``, the living ones beating."""
        while clock.now < NOW + timedelta(seconds=seconds):
            clock.now = min(clock.now + timedelta(seconds=2), NOW + timedelta(seconds=seconds))
            for builder_id in [*alive, spare]:
                service.heartbeat(session, builder_id, clock.now)
            scheduler.tick()

    run_until(LOST_AFTER - 1)
    assert attempts(session, build.id)[dead].state == "dispatched"
    run_until(LOST_AFTER + 1)
    tried = attempts(session, build.id)
    assert tried[dead].state == "lost" and tried[dead].replaced_by == spare
    assert "not heard from for 20 s" in (tried[dead].reason or "")
    finished = tried[dead].finished_at
    assert finished is not None and finished < tried[dead].deadline  # before the timeout
    assert tried[spare].state == "dispatched" and tried[spare].number == 2
    assert queue.sent[-1] == (build.id, spare)
    # The living ones keep their attempts; the build is decided by them and the spare.
    for builder_id in [*alive, spare]:
        answer(session, staging, keys[builder_id], build.id)
    scheduler.tick()
    done = build_of(session, build.id)
    assert done.status == "verified" and done.retries == 1
    assert dead not in (done.verdict or {})["agreed"]


def test_a_restarted_coordinator_hears_its_builders_before_giving_them_up(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    first, queue, _clock, _ = make(engine, tmp_path, lost_after=LOST_AFTER, timeout_margin=3600)
    for key in KEYS[:4]:
        enroll(session, key)
    (build,) = request_build(session, recipe(), NOW)
    first.tick()
    chosen = {b for _, b in queue.sent}
    # The coordinator was down for ten minutes: no heartbeat was recorded meanwhile.
    later = NOW + timedelta(minutes=10)
    clock2 = Clock()
    clock2.now = later
    restarted = Scheduler(
        engine, Staging(tmp_path / "staging"), FakeQueue(),
        SchedulerConfig(timeout_margin=3600, lost_after=LOST_AFTER), clock2,
    )  # fmt: skip
    restarted.tick()
    assert {a.state for a in attempts(session, build.id).values()} == {"dispatched"}
    # Beats arrive again from all but one: only that one is given up.
    silent = sorted(chosen)[0]
    for step in range(1, 12):
        clock2.now = later + timedelta(seconds=2 * step)
        for builder_id in chosen - {silent}:
            service.heartbeat(session, builder_id, clock2.now)
        restarted.tick()
    # Given up as lost; with no spare beating, its task is sent to it again (ADR 37).
    tried = {b: a for b, a in attempts(session, build.id).items() if b in chosen}
    assert {b: a.interruptions for b, a in tried.items()} == {
        b: 1 if b == silent else 0 for b in chosen
    }
    assert "not heard from for 20 s" in (tried[silent].reason or "")


def test_a_paused_coordinator_counts_silence_afresh(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    scheduler, _queue, clock, _ = make(engine, tmp_path, lost_after=LOST_AFTER, timeout_margin=3600)
    for key in KEYS[:3]:
        enroll(session, key)
    (build,) = request_build(session, recipe(), NOW)
    scheduler.tick()
    # Frozen for five minutes (docker pause, or passes failing on the database): the next
    # pass comes before any builder could beat again, and gives nobody up.
    clock.now = NOW + timedelta(minutes=5)
    scheduler.tick()
    assert {a.state for a in attempts(session, build.id).values()} == {"dispatched"}
    # Still silent a whole lost_after later, with passes in between: now they are lost
    # (and, with no spare, their tasks sent to them again: ADR 37).
    for step in range(1, 12):
        clock.now = NOW + timedelta(minutes=5, seconds=2 * step)
        scheduler.tick()
    given_up = attempts(session, build.id).values()
    assert {(a.state, a.interruptions) for a in given_up} == {("dispatched", 1)}
    assert all("not heard from" in (a.reason or "") for a in given_up)


def test_a_task_the_broker_refused_is_sent_again_on_the_next_pass(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    scheduler, queue, _, _ = make(engine, tmp_path, lost_after=LOST_AFTER)
    for key in KEYS[:3]:
        enroll(session, key)
    (build,) = request_build(session, recipe(), NOW)
    queue.down = True
    scheduler.tick()
    assert queue.sent == []
    assert build_of(session, build.id).status == "running"
    tries = queue.tries
    scheduler.tick()  # still away: nothing sent, nothing lost, one try only
    assert queue.sent == [] and queue.tries == tries + 1
    queue.down = False
    scheduler.tick()
    assert sorted(b for _, b in queue.sent) == sorted(k.keyid for k in KEYS[:3])
    scheduler.tick()  # sent once: not again
    assert len(queue.sent) == 3


def test_a_broker_that_lost_its_contents_gets_every_outstanding_task_again(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    scheduler, queue, _, staging = make(engine, tmp_path, lost_after=LOST_AFTER)
    for key in KEYS[:3]:
        enroll(session, key)
    (build,) = request_build(session, recipe(), NOW)
    (other,) = request_build(session, recipe(), NOW)
    scheduler.tick()
    answer(session, staging, KEYS[0], build.id)
    scheduler.tick()
    assert len(queue.sent) == 6
    queue.reset = True
    scheduler.tick()
    again = queue.sent[6:]
    outstanding = {(build.id, k.keyid) for k in KEYS[1:3]} | {(other.id, k.keyid) for k in KEYS[:3]}
    assert sorted(again) == sorted(outstanding)  # not the task whose result is in
    scheduler.tick()
    assert len(queue.sent) == 6 + len(outstanding)
