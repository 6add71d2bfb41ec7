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
from farm.result import OutputDigest
from tests.unit.farm.conftest import BASE_RECIPE
from tests.unit.farm.coordinator._world import BAD, GOOD, NOW, WHEEL, envelope

ARM_IMAGE = "sha256:" + "cd" * 32


def _sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


AMD_WHEEL = "demo-1.0.0-cp311-cp311-linux_x86_64.whl"
ARM_WHEEL = "demo-1.0.0-cp311-cp311-linux_aarch64.whl"


def _recipe(compiled: bool = False) -> Recipe:
    outputs: list[dict[str, str]] = [{"path": WHEEL}]
    if compiled:  # a platform wheel per architecture (ADR 42)
        outputs = [{"path": AMD_WHEEL, "arch": "amd64"}, {"path": ARM_WHEEL, "arch": "arm64"}]
    data: dict[str, Any] = {
        **BASE_RECIPE,
        "architectures": ["amd64", "arm64"],
        "images": {"arm64": ARM_IMAGE},
        "outputs": outputs,
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


def _run(
    engine: Engine, tmp_path: Path, amd64: bytes, arm64: bytes, *, compiled: bool = False
) -> dict[str, Build]:
    """Build the two-architecture recipe; each architecture's builder answers ``bytes``
    (named as the recipe's outputs for it)."""
    r, queue, staging = _recipe(compiled), Queue(), Staging(tmp_path / "staging")
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
            (out,) = r.outputs_for(arch)
            named = (OutputDigest(name=out.path, sha256=_sha(content), size=len(content)),)
            env = envelope(
                key, r, build_id, content, arch=arch, image_digest=r.image_for(arch),
                outputs=named,
            )  # fmt: skip
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


def test_compiled_wheels_per_arch_are_not_compared_and_both_verify(
    engine: Engine, tmp_path: Path
) -> None:
    """A platform wheel per architecture: different names and bytes by design. Both
    verify; the comparison is recorded as not applicable, and nothing is diffed."""
    builds = _run(engine, tmp_path, GOOD, BAD, compiled=True)
    for arch, build in builds.items():
        assert build.status == "verified", arch
        assert build.verdict is not None
        assert [d["name"] for d in build.verdict["digests"]] == [
            {"amd64": AMD_WHEEL, "arm64": ARM_WHEEL}[arch]
        ]
        cross = build.verdict["cross_arch"]
        assert cross["verdict"] == "not_applicable" and cross["outputs"] == {}
        assert cross["arches"] == ["amd64", "arm64"]
        assert cross["builds"] == {a: b.id for a, b in builds.items()}
        assert _pairs(build.verdict) == []
