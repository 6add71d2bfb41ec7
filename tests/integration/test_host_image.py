"""The host image every host of a farm of hosts runs is reproducible and holds farm.

Builds ``deploy/host-image`` twice from scratch (two output folders, the second without
loading), so the comparison is of two real mmdebstrap runs and two wheelhouse installs;
then runs the loaded image by its ID and checks what each role needs. Needs root, a
Docker Engine, Debian's mirror and PyPI (the .debs and wheels are cached in
``$FARM_CACHE``, so only the first run on a host downloads them).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

pytestmark = [
    pytest.mark.docker,
    pytest.mark.image,
    pytest.mark.slow,
    pytest.mark.network,
    pytest.mark.timeout(1800),
]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "host-image" / "build.sh"
NAME = "farm-host-bookworm-amd64"
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class Build:
    out: Path
    image: str

    @property
    def rootfs(self) -> Path:
        return self.out / f"{NAME}.tar"


def _build(out: Path, *extra: str) -> Build:
    proc = subprocess.run(
        ["bash", str(SCRIPT), "--out", str(out), *extra],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    image = proc.stdout.strip().splitlines()[-1]
    assert DIGEST.fullmatch(image), proc.stdout
    assert (out / f"{NAME}.image-id").read_text().strip() == image
    return Build(out, image)


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Build, Build]:
    first = _build(tmp_path_factory.mktemp("host-a"))
    second = _build(tmp_path_factory.mktemp("host-b"), "--no-load")
    return first, second


def _run(image: str, script: str, user: str = "0:0") -> str:
    client = docker.from_env()
    try:
        out: bytes = client.containers.run(
            image, ["/bin/sh", "-c", script], user=user, remove=True, network_mode="none"
        )
    finally:
        client.close()
    return out.decode()


def test_two_builds_give_the_same_image(builds: tuple[Build, Build]) -> None:
    first, second = builds
    assert first.image == second.image
    assert (first.out / f"{NAME}.tar.sha256").read_text().split()[0] == (
        second.out / f"{NAME}.tar.sha256"
    ).read_text().split()[0]
    assert (first.out / f"{NAME}.packages.txt").read_text() == (
        second.out / f"{NAME}.packages.txt"
    ).read_text()


def test_the_image_runs_farm_and_every_role_s_program(builds: tuple[Build, Build]) -> None:
    image = builds[0].image
    out = _run(
        image,
        "farm version; python3 -c 'import sys; print(sys.version_info[:2])'; "
        "for p in dockerd redis-server git tini; do command -v $p; done; "
        "ls /usr/lib/postgresql/15/bin/initdb; "
        "farm ledger --help >/dev/null && echo ledger-ok; farm dist --help >/dev/null && "
        "echo dist-ok; farm builder --help >/dev/null && echo builder-ok",
    )
    for expected in (
        "0.1.0", "(3, 11)", "/usr/sbin/dockerd", "/usr/bin/redis-server", "/usr/bin/git",
        "/usr/bin/tini", "initdb", "ledger-ok", "dist-ok", "builder-ok",
    ):  # fmt: skip
        assert expected in out, (expected, out)


def test_services_run_as_farm_and_nothing_secret_is_baked_in(
    builds: tuple[Build, Build],
) -> None:
    image = builds[0].image
    assert _run(image, "id -u; id -g; stat -c %U:%a /var/lib/farm", user="farm").split() == [
        "1000", "1000", "farm:750",
    ]  # fmt: skip
    leftovers = _run(
        image,
        "find /etc/ssl/private /var/lib/postgresql/15 /etc/postgresql/15 -mindepth 1 "
        "2>/dev/null; "
        "find /opt/farm -name direct_url.json; "
        "find /opt/farm/lib -name '*.pyc' | head -n 1",
    ).split()
    # No snakeoil key, no PostgreSQL cluster, no record of the build host's paths; and
    # byte code compiled once (hash-checked), so a service does not compile at start.
    assert leftovers and all(p.endswith(".pyc") for p in leftovers), leftovers
