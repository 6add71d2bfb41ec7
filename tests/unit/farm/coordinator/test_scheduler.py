"""The scheduler and the recipe follower, against a real database and a fake queue."""

from __future__ import annotations

import hashlib
import hmac
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from farm.coordinator import service
from farm.coordinator.models import Build, BuildAttempt, Builder, BuilderCreate
from farm.coordinator.recipes_repo import RecipeFollower, list_recipes, signature_matches
from farm.coordinator.scheduler import Scheduler, SchedulerConfig, request_build
from farm.coordinator.staging import Staging
from farm.errors import FarmError
from farm.keys import KeyPair, generate_key
from farm.recipe import Recipe
from tests.unit.farm.conftest import BASE_RECIPE
from tests.unit.farm.coordinator._world import BAD, GOOD, NOW, envelope, recipe

KEYS = [generate_key() for _ in range(5)]


class FakeQueue:
    """Records what was sent; ``failures`` says which tasks ended in an exception;
    ``down`` makes every send fail (the broker away); ``reset`` is reported once by
    :meth:`broker_reset` (the broker lost its contents)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.failures: dict[tuple[str, str], str] = {}
        self.down = False
        self.reset = False
        self.tries = 0

    def send(self, recipe: Recipe, arch: str, builder: Builder, build_id: str) -> None:
        self.tries += 1
        if self.down:
            raise FarmError("broker unreachable: connection refused")
        self.sent.append((build_id, builder.id))

    def failure(self, build_id: str, arch: str, builder_id: str) -> str | None:
        return self.failures.get((build_id, builder_id))

    def broker_reset(self) -> bool:
        reset, self.reset = self.reset, False
        return reset


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def enroll(
    session: Session, key: KeyPair, host: str | None = None, domain: str | None = None
) -> None:
    token = service.issue_enrollment_token(session, NOW)
    req = BuilderCreate(
        token=token.token,
        public_key=key.public_dict(),
        hostname=host or f"host-{key.keyid[:6]}",
        arches=["amd64"],
    )
    service.enroll(session, req, NOW)
    service.approve(session, key.keyid, NOW, domain or f"site-{key.keyid[:6]}")
    service.heartbeat(session, key.keyid, NOW)


def make(
    engine: Engine, tmp_path: Path, **config: object
) -> tuple[Scheduler, FakeQueue, Clock, Staging]:
    queue, clock, staging = FakeQueue(), Clock(), Staging(tmp_path / "staging")
    cfg = SchedulerConfig(**{"timeout_margin": 60, **config})  # type: ignore[arg-type]
    return Scheduler(engine, staging, queue, cfg, clock), queue, clock, staging


def answer(
    session: Session, staging: Staging, key: KeyPair, build_id: str, content: bytes = GOOD
) -> None:
    session.expire_all()  # the scheduler changed the build in its own session
    service.record_upload(
        session, staging, key.keyid, hashlib.sha256(content).hexdigest(), content, NOW
    )
    service.record_result(
        session, staging, build_id, key.keyid, envelope(key, recipe(), build_id, content), NOW
    )


def attempts(session: Session, build_id: str) -> dict[str, BuildAttempt]:
    session.expire_all()
    rows = session.exec(select(BuildAttempt).where(BuildAttempt.build_id == build_id)).all()
    return {a.builder_id: a for a in rows}


def build_of(session: Session, build_id: str) -> Build:
    session.expire_all()
    return service.get_build(session, build_id)


def test_waits_for_quorum_then_dispatches_and_decides(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    scheduler, queue, _, staging = make(engine, tmp_path)
    for key in KEYS[:2]:
        enroll(session, key)
    (build,) = request_build(session, recipe(), NOW)
    scheduler.tick()
    waiting = build_of(session, build.id)
    assert waiting.status == "pending" and queue.sent == []
    assert (
        waiting.note is not None
        and "3 builders of amd64 in distinct independence domains" in waiting.note
    )
    enroll(session, KEYS[2])
    scheduler.tick()
    assert {b for _, b in queue.sent} == {k.keyid for k in KEYS[:3]}
    assert build_of(session, build.id).status == "running"
    for key in KEYS[:3]:
        answer(session, staging, key, build.id)
    # A managed build is decided by the scheduler, not by the last arriving result.
    assert build_of(session, build.id).verdict is None
    scheduler.tick()
    done = build_of(session, build.id)
    assert done.status == "verified" and done.retries == 0
    assert {a.state for a in attempts(session, build.id).values()} == {"succeeded"}


def test_an_unsigned_failure_ends_nothing_and_a_timed_out_builder_is_replaced(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    scheduler, queue, clock, staging = make(engine, tmp_path, max_retries=1)
    for key in KEYS:
        enroll(session, key)
    (build,) = request_build(session, recipe(), NOW)
    scheduler.tick()
    first = [b for _, b in queue.sent]
    keys = {k.keyid: k for k in KEYS}
    slow, crashed, good = first
    answer(session, staging, keys[good], build.id)
    # A FAILURE state in the broker is no builder's word (anyone with the Redis URL can
    # write one, ADR 41): the attempt is not failed, nothing is replaced, no retry spent.
    queue.failures[(build.id, crashed)] = "task failed: WorkerLostError()"
    scheduler.tick()
    tried = attempts(session, build.id)
    assert tried[crashed].state == "dispatched" and tried[crashed].replaced_by is None
    assert build_of(session, build.id).retries == 0 and len(queue.sent) == 3
    # Its deadline still ends it: it times out and is replaced, within the bound.
    answer(session, staging, keys[slow], build.id)
    for _ in range(3):
        for b in service.list_builders(session):
            service.heartbeat(session, b.id, clock.now)
        clock.now += timedelta(seconds=BASE_RECIPE_TIMEOUT)
    for b in service.list_builders(session):
        service.heartbeat(session, b.id, clock.now)
    scheduler.tick()
    tried = attempts(session, build.id)
    replacement = tried[crashed].replaced_by
    assert tried[crashed].state == "timed_out" and replacement is not None
    assert replacement not in first and tried[replacement].number == 2
    assert build_of(session, build.id).retries == 1
    answer(session, staging, keys[replacement], build.id)
    scheduler.tick()
    assert build_of(session, build.id).status == "verified"


BASE_RECIPE_TIMEOUT = 900


def test_a_disagreeing_builder_makes_the_build_disputed(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    scheduler, _queue, _, staging = make(engine, tmp_path)
    for key in KEYS[:3]:
        enroll(session, key)
    (build,) = request_build(session, recipe(), NOW)
    scheduler.tick()
    for i, key in enumerate(KEYS[:3]):
        answer(session, staging, key, build.id, BAD if i == 0 else GOOD)
    scheduler.tick()
    assert build_of(session, build.id).status == "disputed"


def test_builders_are_picked_from_distinct_domains_not_hosts(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    # Three builders on one host in three domains build; two in one domain do not.
    for key, domain in zip(KEYS[:3], ["org-a", "org-a", "org-b"], strict=True):
        enroll(session, key, host="one-machine", domain=domain)
    scheduler, queue, _, _ = make(engine, tmp_path)
    (build,) = request_build(session, recipe(), NOW)
    scheduler.tick()
    assert queue.sent == [] and build_of(session, build.id).status == "pending"
    assert "distinct independence domains" in (build_of(session, build.id).note or "")
    enroll(session, KEYS[3], host="one-machine", domain="org-c")
    scheduler.tick()
    sent = sorted(b for _, b in queue.sent)
    assert len(sent) == 3 and build_of(session, build.id).status == "running"
    domains = {service.get_builder(session, b).domain for b in sent}
    assert domains == {"org-a", "org-b", "org-c"}


def test_resume_sends_outstanding_tasks_again(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    scheduler, _queue, _, staging = make(engine, tmp_path)
    for key in KEYS[:3]:
        enroll(session, key)
    (build,) = request_build(session, recipe(), NOW)
    scheduler.tick()
    answer(session, staging, KEYS[0], build.id)
    scheduler.tick()
    restarted, queue2, _, _ = make(engine, tmp_path)
    restarted.resume()
    assert sorted(b for _, b in queue2.sent) == sorted(k.keyid for k in KEYS[1:3])


def _git(repo: Path, *argv: str) -> None:
    env = {"HOME": str(repo), "PATH": "/usr/bin:/bin", "GIT_COMMITTER_DATE": "2024-01-01T00:00Z"}
    subprocess.run(["git", *argv], cwd=repo, check=True, env=env, capture_output=True)


def test_follower_schedules_clean_recipes_once_and_records_lint_failures(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    (repo / "recipes" / "demo").mkdir(parents=True)
    (repo / "recipes" / "demo" / "1.0.0.yaml").write_text(yaml.safe_dump(BASE_RECIPE))
    (repo / "recipes" / "broken").mkdir()
    (repo / "recipes" / "broken" / "1.0.yaml").write_text("name: broken\nversion: '2.0'\n")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "recipes")
    follower = RecipeFollower(engine, str(repo), tmp_path / "checkout")
    requested = follower.poll(NOW)
    assert len(requested) == 1
    assert build_of(session, requested[0]).origin.startswith("repo:recipes/demo/1.0.0.yaml@")
    assert follower.poll(NOW) == []
    rows = {r.path: r for r in list_recipes(session)}
    assert rows["recipes/demo/1.0.0.yaml"].status == "scheduled"
    assert rows["recipes/demo/1.0.0.yaml"].last_build_id == requested[0]
    broken = rows["recipes/broken/1.0.yaml"]
    assert broken.status == "lint_failed" and broken.digest is None
    assert any("recipes/broken/1.0.yaml" in p for p in broken.problems)


@pytest.mark.parametrize(
    ("secret", "body", "header", "ok"),
    [
        ("s3cret", b"{}", "sha256=" + hmac.new(b"s3cret", b"{}", hashlib.sha256).hexdigest(), True),
        (
            "s3cret",
            b"{} ",
            "sha256=" + hmac.new(b"s3cret", b"{}", hashlib.sha256).hexdigest(),
            False,
        ),
        ("other", b"{}", "sha256=" + hmac.new(b"s3cret", b"{}", hashlib.sha256).hexdigest(), False),
        ("s3cret", b"{}", None, False),
        ("s3cret", b"{}", "sha1=abc", False),
    ],
)
def test_webhook_signature(secret: str, body: bytes, header: str | None, ok: bool) -> None:
    assert signature_matches(secret, body, header) is ok
