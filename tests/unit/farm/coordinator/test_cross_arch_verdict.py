"""The coordinator records cross-architecture agreement of pure wheels in the verdict."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from farm.coordinator import service
from farm.coordinator.models import Build, Builder, BuilderCreate
from farm.coordinator.reports import _pairs, make_diff_reports
from farm.coordinator.scheduler import Scheduler, SchedulerConfig, request_build
from farm.coordinator.staging import Staging
from farm.keys import KeyPair, generate_key
from farm.recipe import Recipe, parse_recipe
from tests.unit.farm.conftest import BASE_RECIPE
from tests.unit.farm.coordinator._world import BAD, GOOD, NOW, WHEEL, envelope

ARM_IMAGE = "sha256:" + "cd" * 32


def _recipe() -> Recipe:
    data: dict[str, Any] = {
        **BASE_RECIPE,
        "architectures": ["amd64", "arm64"],
        "images": {"arm64": ARM_IMAGE},
        "outputs": [{"path": WHEEL}],
        "quorum": 1,
    }
    return parse_recipe(data)


class Queue:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    def send(self, recipe: Recipe, arch: str, builder: Builder, build_id: str) -> None:
        self.sent.append((build_id, arch, builder.id))

    def failure(self, build_id: str, arch: str, builder_id: str) -> str | None:
        return None

    def broker_reset(self) -> bool:
        return False


def _run(engine: Engine, tmp_path: Path, amd64: bytes, arm64: bytes) -> dict[str, Build]:
    """Build the two-architecture recipe; each architecture's builder answers ``bytes``."""
    r, queue, staging = _recipe(), Queue(), Staging(tmp_path / "staging")
    scheduler = Scheduler(engine, staging, queue, SchedulerConfig(), lambda: NOW)
    keys: dict[str, KeyPair] = {"amd64": generate_key(), "arm64": generate_key()}
    with Session(engine, expire_on_commit=False) as session:
        for arch, key in keys.items():
            token = service.issue_enrollment_token(session, NOW)
            req = BuilderCreate(
                token=token.token, public_key=key.public_dict(), hostname=f"h-{arch}",
                arches=[arch],
            )  # fmt: skip
            service.enroll(session, req, NOW)
            service.approve(session, key.keyid, NOW, f"site-{arch}")
            service.heartbeat(session, key.keyid, NOW)
        builds = {b.arch: b.id for b in request_build(session, r, NOW)}
        scheduler.tick()
        for arch, content in (("amd64", amd64), ("arm64", arm64)):
            key, build_id = keys[arch], builds[arch]
            session.expire_all()
            service.record_upload(
                session, staging, key.keyid, hashlib.sha256(content).hexdigest(), content, NOW
            )
            env = envelope(key, r, build_id, content, arch=arch, image_digest=r.image_for(arch))
            service.record_result(session, staging, build_id, key.keyid, env, NOW)
            scheduler.tick()  # decides this architecture before the next one answers
        session.expire_all()
        return {a: service.get_build(session, b) for a, b in builds.items()}


def test_a_pure_wheel_identical_on_both_arches_is_recorded_as_agreed(
    engine: Engine, tmp_path: Path
) -> None:
    builds = _run(engine, tmp_path, GOOD, GOOD)
    for arch, build in builds.items():
        assert build.status == "verified", arch
        assert build.verdict is not None
        cross = build.verdict["cross_arch"]
        assert cross["verdict"] == "agreed" and cross["arches"] == ["amd64", "arm64"]
        assert cross["builds"] == {a: b.id for a, b in builds.items()}
        assert _pairs(build.verdict) == []


def test_a_pure_wheel_that_differs_across_arches_is_disputed_with_a_diff(
    engine: Engine, tmp_path: Path
) -> None:
    builds = _run(engine, tmp_path, GOOD, BAD)
    first, second = builds["amd64"], builds["arm64"]
    # The first decided may be attested already: it keeps its status, with the record.
    assert first.status == "verified"
    assert second.status == "disputed"
    assert second.verdict is not None and first.verdict is not None
    assert second.verdict["status"] == "disputed"
    assert "must be byte-identical on every architecture" in second.verdict["reason"]
    assert WHEEL in second.verdict["reason"]
    assert first.verdict["cross_arch"]["verdict"] == "disputed"
    good, bad = hashlib.sha256(GOOD).hexdigest(), hashlib.sha256(BAD).hexdigest()
    assert second.verdict["cross_arch"]["outputs"][WHEEL]["sha256"] == {
        "amd64": good,
        "arm64": bad,
    }
    # What diffoscope is run on (the report worker): the two architectures' wheels.
    assert _pairs(second.verdict) == [(WHEEL, good, bad)]
    with Session(engine) as session:
        (report,) = make_diff_reports(
            session, Staging(tmp_path / "staging"), second.id, tmp_path / "reports"
        )
        assert (report.output, report.sha256_a, report.sha256_b) == (WHEEL, good, bad)
        assert report.status == "done", report.error
        assert report.html_path is not None and Path(report.html_path).is_file()
