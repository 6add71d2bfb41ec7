"""arm64 beside amd64, for real: builders run arm64 containers under QEMU (issue 16).

(a) The shipped flit_core 3.10.1 recipe pins one builder image per architecture; one
real builder worker builds it for amd64 and for arm64 (``farm build``, each
architecture its own build id), and its pure wheel comes out byte-identical on both,
equal to upstream's, and the cross-architecture check says agreed.

(b) A build that needs arm64 waits, and says why in its note, while fewer
arm64-capable builders are up than its quorum; amd64 goes ahead; once enough are
up it is dispatched to exactly its quorum, never to fewer. This one runs the
coordinator's scheduler on a real database with builders enrolled as this host's would
be (the architectures binfmt lets it run); it starts no container.

(c) ``farm up`` with that recipe, on this host (binfmt), takes it through both
architectures: three builders verify each, both attestations are committed, and the
node serves the wheel for each architecture.

Needs Docker, the builder images of both architectures (``deploy/setup.sh``), and the
kernel's qemu-aarch64 binfmt handler with the F flag; without the handler the module
is skipped, saying so. flit_core has no build dependencies, so its arm64 build is the
cheapest one under QEMU: (a) took 56 s on an idle 2-core host and 262 s while other
builds shared it; (b) takes well under a second.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from builders.arch import buildable_arches
from farm.cluster import local_cluster
from farm.coordinator import service
from farm.coordinator.db import create_tables, make_engine
from farm.coordinator.models import Builder, BuilderCreate
from farm.coordinator.scheduler import Scheduler, SchedulerConfig, request_build
from farm.coordinator.staging import Staging
from farm.keys import KeyPair, generate_key
from farm.recipe import load_recipe
from tests.integration.conftest import NEEDS_ARM64, REPO

pytestmark = [
    pytest.mark.docker,
    pytest.mark.image,
    pytest.mark.slow,
    NEEDS_ARM64,
]

RECIPE = REPO / "recipes" / "flit_core" / "3.10.1.yaml"
WHEEL = "flit_core-3.10.1-py3-none-any.whl"


@pytest.fixture(scope="module")
def recipe_here(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped recipe, or a copy re-pinned to the images this host builds (loudly)."""
    from farm.cli.up_cmd import recipe_for_this_host

    return recipe_for_this_host(RECIPE, tmp_path_factory.mktemp("pins"))


@pytest.mark.redis
def test_a_pure_wheel_is_byte_identical_on_amd64_and_arm64(
    recipe_here: Path, tmp_path: Path
) -> None:
    recipe = load_recipe(recipe_here)
    assert recipe.architectures == ("amd64", "arm64")
    assert recipe.image_for("arm64") != recipe.image_for("amd64")
    (upstream,) = recipe.upstream
    out = tmp_path / "report.json"
    with local_cluster(tmp_path / "cluster", 1) as cluster:
        (builder,) = cluster.builders
        proc = subprocess.run(
            [sys.executable, "-m", "farm.cli", "build", str(recipe_here), "--builders", "1",
             "--redis-url", cluster.redis.url, "--json", str(out),
             "--coordinator-key", str(cluster.coordinator_key)],
            capture_output=True, text=True, timeout=600, check=False,
            env={"PATH": "/usr/bin:/bin", "COLUMNS": "200", "HOME": str(tmp_path)},
        )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    # One builder built both: each architecture is its own build.
    ids = report["build_ids"]
    assert set(ids) == {"amd64", "arm64"} and ids["amd64"] != ids["arm64"]
    for arch in ("amd64", "arm64"):
        result = report["arches"][arch]
        assert result["verdict"] == "verified", (arch, result)
        assert result["builders"][builder.builder_id]["outputs"] == {WHEEL: upstream.sha256}
    assert report["cross_arch"] == {
        "verdict": "agreed",
        "arches": ["amd64", "arm64"],
        "outputs": {
            WHEEL: {"agreed": True, "sha256": {"amd64": upstream.sha256, "arm64": upstream.sha256}}
        },
    }
    assert "identical" in proc.stdout


@pytest.mark.redis
def test_farm_up_takes_a_two_architecture_recipe_through_on_both(tmp_path: Path) -> None:
    """``farm up`` on a host with binfmt submits every architecture it can build, waits
    until each is committed and served (not only the first), and shows both: one wheel,
    the same bytes, attested for amd64 and for arm64 (ADR 42)."""
    proc = subprocess.run(
        [sys.executable, "-m", "farm.cli", "up", str(RECIPE), "--root", str(tmp_path / "farm")],
        capture_output=True, text=True, timeout=1500, check=False,
        env={**os.environ, "COLUMNS": "250"},
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "verified and served: flit_core 3.10.1" in out, out
    rows = [line for line in out.splitlines() if WHEEL in line]
    assert {arch for arch in ("amd64", "arm64") if any(arch in r for r in rows)} == {
        "amd64",
        "arm64",
    }, out


class Sent:
    """The coordinator's dispatcher, recording (build id, arch, builder) per task sent."""

    def __init__(self) -> None:
        self.tasks: list[tuple[str, str, str]] = []

    def send(self, recipe: object, arch: str, builder: Builder, build_id: str) -> None:
        self.tasks.append((build_id, arch, builder.id))

    def failure(self, build_id: str, arch: str, builder_id: str) -> str | None:
        return None

    def broker_reset(self) -> bool:
        return False


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(f"sqlite:///{tmp_path / 'farm.db'}")
    create_tables(eng)
    yield eng
    eng.dispose()


def _enroll(session: Session, key: KeyPair, arches: list[str], now: datetime) -> None:
    token = service.issue_enrollment_token(session, now)
    req = BuilderCreate(
        token=token.token, public_key=key.public_dict(), hostname=f"host-{key.keyid[:6]}",
        arches=arches,
    )  # fmt: skip
    service.enroll(session, req, now)
    service.approve(session, key.keyid, now, f"site-{key.keyid[:6]}")
    service.heartbeat(session, key.keyid, now)


def test_a_build_that_needs_arm64_waits_for_enough_arm64_builders(
    engine: Engine, tmp_path: Path, recipe_here: Path
) -> None:
    recipe = load_recipe(recipe_here)
    now = datetime.now(UTC)
    sent = Sent()
    scheduler = Scheduler(
        engine, Staging(tmp_path / "staging"), sent, SchedulerConfig(), lambda: now
    )
    # What a builder on this host advertises (amd64 and, through binfmt, arm64), on one
    # host; three hosts without the handler advertise amd64 only.
    here = list(buildable_arches())
    amd64_only = [generate_key() for _ in range(3)]
    capable = [generate_key() for _ in range(recipe.quorum)]
    with Session(engine, expire_on_commit=False) as session:
        for key in amd64_only:
            _enroll(session, key, ["amd64"], now)
        _enroll(session, capable[0], here, now)
        builds = {b.arch: b.id for b in request_build(session, recipe, now)}
        scheduler.tick()
        session.expire_all()
        arm = service.get_build(session, builds["arm64"])
        assert arm.status == "pending" and arm.note is not None
        assert (
            f"{recipe.quorum} builders of arm64 in distinct independence domains are needed"
            in arm.note
        )
        assert "healthy ones are available in 1" in arm.note
        assert service.get_build(session, builds["amd64"]).status == "running"
        assert {a for _, a, _ in sent.tasks} == {"amd64"}

        for key in capable[1:]:
            _enroll(session, key, here, now)
        scheduler.tick()
        session.expire_all()
        assert service.get_build(session, builds["arm64"]).status == "running"
    to_arm = {b for build_id, a, b in sent.tasks if build_id == builds["arm64"]}
    assert {a for build_id, a, _ in sent.tasks if build_id == builds["arm64"]} == {"arm64"}
    assert to_arm == {k.keyid for k in capable}  # exactly its quorum, all arm64-capable
