"""The scheduler against builder hosts that fail builds themselves (ADR 37).

A builder's signed failure of kind ``infrastructure`` (its Docker Engine stopped under
the build) is recorded ``interrupted``, counts for nothing, and its task is sent again
to the same builder, which then builds and is counted; so is a lost builder's when no
spare can replace it. At most ``max_interruptions`` times per attempt: then a spare
replaces it, or the build is decided without it. Real database, fake queue.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from farm.coordinator import service
from farm.coordinator.scheduler import request_build
from farm.coordinator.staging import Staging
from farm.keys import KeyPair
from tests.unit.farm.coordinator._world import NOW, envelope, recipe
from tests.unit.farm.coordinator.test_scheduler import (
    KEYS,
    Clock,
    answer,
    attempts,
    build_of,
    enroll,
    make,
)


def interrupt(
    session: Session, staging: Staging, key: KeyPair, build_id: str, clock: Clock, n: int = 1
) -> dict[str, object]:
    """``key``'s host reports it failed the build (its ``n``-th time), received now."""
    session.expire_all()
    env = envelope(
        key,
        recipe(),
        build_id,
        status="failed",
        exit_code=None,
        outputs=(),
        error=f"cannot list containers: docker.sock missing ({n})",
        failure_kind="infrastructure",
    )
    service.record_result(session, staging, build_id, key.keyid, env, clock.now)
    return env


def later(clock: Clock, seconds: float = 5) -> None:
    clock.now += timedelta(seconds=seconds)


def beat_all(session: Session, clock: Clock, keys: list[KeyPair]) -> None:
    for key in keys:
        service.heartbeat(session, key.keyid, clock.now)


def test_an_interrupted_builder_is_sent_its_task_again_and_counted_when_it_builds(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    scheduler, queue, clock, staging = make(engine, tmp_path, interruption_pause=0)
    for key in KEYS[:3]:  # no spare
        enroll(session, key)
    (build,) = request_build(session, recipe(), NOW)
    scheduler.tick()
    later(clock)
    first = interrupt(session, staging, KEYS[0], build.id, clock)
    scheduler.tick()
    tried = attempts(session, build.id)[KEYS[0].keyid]
    assert (tried.state, tried.interruptions, tried.replaced_by) == ("dispatched", 1, None)
    assert "infrastructure: cannot list containers" in (tried.reason or "")
    assert tried.dispatched_at == clock.now and tried.deadline > clock.now
    assert queue.sent[-1] == (build.id, KEYS[0].keyid) and len(queue.sent) == 4
    view = service.build_public(session, build.id)
    assert [r.status for r in view.results] == ["interrupted"]
    assert view.results[0].error is not None and "docker.sock" in view.results[0].error
    # The same report delivered again (a retried post) is not a second interruption.
    later(clock)
    service.record_result(session, staging, build.id, KEYS[0].keyid, first, clock.now)
    scheduler.tick()
    assert attempts(session, build.id)[KEYS[0].keyid].interruptions == 1
    # Back, it builds: its result counts like anyone's; no replacement was used.
    for key in KEYS[:3]:
        answer(session, staging, key, build.id)
    scheduler.tick()
    done = build_of(session, build.id)
    assert done.status == "verified" and done.retries == 0
    assert KEYS[0].keyid in (done.verdict or {})["agreed"]
    assert attempts(session, build.id)[KEYS[0].keyid].state == "succeeded"


def test_a_host_that_just_failed_a_build_is_not_asked_again_at_once(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    """A host going down fails every task it takes: sending at once would use up the
    bound in a second. The build waits the pause out, and is not decided meanwhile."""
    scheduler, queue, clock, staging = make(engine, tmp_path, interruption_pause=10)
    for key in KEYS[:3]:
        enroll(session, key)
    (build,) = request_build(session, recipe(), NOW)
    scheduler.tick()
    for key in KEYS[1:3]:
        answer(session, staging, key, build.id)
    later(clock, 1)
    interrupt(session, staging, KEYS[0], build.id, clock)
    for _ in range(4):  # 8 s of passes: resting
        later(clock, 2)
        scheduler.tick()
    tried = attempts(session, build.id)[KEYS[0].keyid]
    assert (tried.state, tried.interruptions) == ("interrupted", 0)
    assert len(queue.sent) == 3 and build_of(session, build.id).status == "running"
    later(clock, 4)  # 10 s after the pass that saw the report
    scheduler.tick()
    tried = attempts(session, build.id)[KEYS[0].keyid]
    assert (tried.state, tried.interruptions) == ("dispatched", 1)
    assert queue.sent[-1] == (build.id, KEYS[0].keyid)
    answer(session, staging, KEYS[0], build.id)
    scheduler.tick()
    assert build_of(session, build.id).status == "verified"


def test_past_the_bound_a_spare_replaces_the_broken_host(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    scheduler, queue, clock, staging = make(
        engine, tmp_path, max_interruptions=3, interruption_pause=0
    )
    for key in KEYS[:4]:
        enroll(session, key)
    (build,) = request_build(session, recipe(), NOW)
    scheduler.tick()
    broken = next(k for k in KEYS[:4] if k.keyid == queue.sent[0][1])
    spare = next(k for k in KEYS[:4] if k.keyid not in {b for _, b in queue.sent})
    for n in range(1, 5):
        later(clock)
        beat_all(session, clock, KEYS[:4])
        interrupt(session, staging, broken, build.id, clock, n)
        scheduler.tick()
    tried = attempts(session, build.id)
    assert tried[broken.keyid].state == "interrupted" and tried[broken.keyid].interruptions == 3
    assert tried[broken.keyid].replaced_by == spare.keyid
    assert [b for _, b in queue.sent].count(broken.keyid) == 4  # first send + 3 again
    assert queue.sent[-1] == (build.id, spare.keyid)
    assert build_of(session, build.id).retries == 1


def test_with_no_spare_a_broken_host_fails_the_build_after_the_bound(
    engine: Engine, session: Session, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    scheduler, _queue, clock, staging = make(
        engine, tmp_path, max_interruptions=2, interruption_pause=0
    )
    for key in KEYS[:3]:
        enroll(session, key)
    (build,) = request_build(session, recipe(), NOW)
    scheduler.tick()
    for key in KEYS[1:3]:
        answer(session, staging, key, build.id)
    for n in range(1, 4):
        later(clock)
        interrupt(session, staging, KEYS[0], build.id, clock, n)
        scheduler.tick()
    done = build_of(session, build.id)
    assert done.status == "failed" and done.retries == 0
    tried = attempts(session, build.id)[KEYS[0].keyid]
    assert (tried.state, tried.interruptions) == ("interrupted", 2)
    assert "given up after 2 infrastructure retries" in caplog.text


def test_a_lost_builder_with_no_spare_is_waited_for_within_the_bound(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    lost_after = 20.0
    scheduler, queue, clock, staging = make(
        engine, tmp_path, lost_after=lost_after, max_interruptions=3
    )
    for key in KEYS[:3]:
        enroll(session, key)
    (build,) = request_build(session, recipe(), NOW)
    scheduler.tick()
    restarting, *alive = KEYS[:3]

    def run_for(seconds: float, beating: list[KeyPair]) -> None:
        end = clock.now + timedelta(seconds=seconds)
        while clock.now < end:
            later(clock, 2)
            beat_all(session, clock, beating)
            scheduler.tick()

    # Silent for longer than lost_after (a host restarting slowly): lost, sent again.
    run_for(lost_after + 5, alive)
    tried = attempts(session, build.id)[restarting.keyid]
    assert (tried.state, tried.interruptions) == ("dispatched", 1)
    assert queue.sent[-1] == (build.id, restarting.keyid)
    # Back: it beats and builds; the build is verified with all three.
    run_for(4, KEYS[:3])
    for key in KEYS[:3]:
        answer(session, staging, key, build.id)
    scheduler.tick()
    assert build_of(session, build.id).status == "verified"


def test_a_builder_that_never_comes_back_is_given_up_after_the_bound(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    lost_after = 20.0
    scheduler, _queue, clock, staging = make(
        engine, tmp_path, lost_after=lost_after, max_interruptions=2
    )
    for key in KEYS[:3]:
        enroll(session, key)
    (build,) = request_build(session, recipe(), NOW)
    scheduler.tick()
    dead, *alive = KEYS[:3]
    for key in alive:
        answer(session, staging, key, build.id)
    for _ in range(int(4 * lost_after / 2)):  # (1 + 2) lost_after and some
        later(clock, 2)
        beat_all(session, clock, alive)
        scheduler.tick()
    tried = attempts(session, build.id)[dead.keyid]
    assert (tried.state, tried.interruptions) == ("lost", 2)
    assert build_of(session, build.id).status == "failed"


def test_an_unmanaged_build_takes_an_infrastructure_failure_as_its_result(
    session: Session, tmp_path: Path
) -> None:
    """With no scheduler to send it again, the failure is the builder's answer."""
    staging = Staging(tmp_path / "staging")
    enroll(session, KEYS[0])
    build = service.create_build(session, recipe(), "amd64", [KEYS[0].keyid], "b-unmanaged", NOW)
    clock = Clock()
    interrupt(session, staging, KEYS[0], build.id, clock)
    view = service.build_public(session, build.id)
    assert [(r.status, r.build_status) for r in view.results] == [("accepted", "failed")]
    assert view.status == "failed"


def test_a_result_signed_before_failure_kinds_is_counted_as_the_builds_failure(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    scheduler, _queue, clock, staging = make(engine, tmp_path)
    for key in KEYS[:3]:
        enroll(session, key)
    (build,) = request_build(session, recipe(), NOW)
    scheduler.tick()
    env = envelope(
        KEYS[0], recipe(), build.id, status="failed", exit_code=2, outputs=(), error="exit 2"
    )
    session.expire_all()  # the scheduler changed the build in its own session
    service.record_result(session, staging, build.id, KEYS[0].keyid, env, clock.now)
    scheduler.tick()
    tried = attempts(session, build.id)[KEYS[0].keyid]
    assert (tried.state, tried.interruptions) == ("failed", 0)
