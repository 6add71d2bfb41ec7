"""The builder base image is reproducible, loads by its ID, and has what builds need.

Builds the image twice from scratch (two output folders, the second with ``--force``),
so the comparison is of two real mmdebstrap runs, then runs a container of the image by
its ID. Needs root (mmdebstrap's root mode), a Docker Engine, and Debian's mirror; the
.debs are cached in ``$FARM_CACHE/debs`` so only the first run on a host downloads them.
Self-contained on purpose: no fixtures from conftest.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from builders.image import BUILD_SCRIPT, build_builder_image, image_present, require_image
from farm.errors import ImageError

pytestmark = [
    pytest.mark.docker,
    pytest.mark.image,
    pytest.mark.slow,
    pytest.mark.timeout(1800),
]

NAME = "farm-builder-bookworm-amd64"
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")

# Runs inside the container as its default user; prints one JSON object.
PROBE = r"""
import json, os, pathlib, subprocess, sys
src = pathlib.Path("/tmp/probe.c")
src.write_text("#include <stdio.h>\nint main(void){puts(\"compiled\");return 0;}\n")
subprocess.run(["gcc", "-o", "/tmp/probe", str(src)], check=True)
ran = subprocess.run(["/tmp/probe"], check=True, capture_output=True, text=True).stdout
print(json.dumps({
    "uid": os.getuid(),
    "gid": os.getgid(),
    "cwd": os.getcwd(),
    "python": list(sys.version_info[:2]),
    "gcc": subprocess.run(["gcc", "-dumpversion"], capture_output=True, text=True).stdout.strip(),
    "ran": ran.strip(),
    "dirs": {d: {"isdir": os.path.isdir(d), "entries": sorted(os.listdir(d))}
             for d in ("/src", "/deps", "/out")},
    "tmp_mode": oct(os.stat("/tmp").st_mode & 0o7777),
}))
"""


@dataclass(frozen=True)
class Build:
    digest: str
    out: Path
    log: list[str]
    seconds: float

    @property
    def tarball(self) -> Path:
        return self.out / f"{NAME}.tar"

    @property
    def manifest(self) -> Path:
        return self.out / f"{NAME}.packages.txt"


def _build(out: Path, *, force: bool) -> Build:
    lines: list[str] = []
    start = time.monotonic()
    digest = build_builder_image(force=force, out=out, log=lines.append)
    return Build(digest, out, lines, time.monotonic() - start)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.fixture(scope="module")
def client() -> Iterator[docker.DockerClient]:
    client = docker.from_env()
    client.ping()
    yield client
    client.close()


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Build, Build]]:
    """Two full builds: a fresh output folder each, the second forced.

    The tarballs (about 0.5 GB each) are deleted afterwards; the image stays loaded.
    """
    root = tmp_path_factory.mktemp("builder-image")
    try:
        first = _build(root / "first", force=False)
        second = _build(root / "second", force=True)
        yield first, second
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_two_builds_are_bit_identical(builds: tuple[Build, Build]) -> None:
    first, second = builds
    for build in builds:
        # mmdebstrap really ran (a skipped build would not say this).
        assert any("rootfs built in" in line for line in build.log), build.log[-5:]
        assert DIGEST.fullmatch(build.digest)
        assert (build.out / f"{NAME}.image-id").read_text().strip() == build.digest
    assert first.out != second.out
    first_sha = _sha256(first.tarball)
    assert first_sha == _sha256(second.tarball)
    assert (first.out / f"{NAME}.tar.sha256").read_text().split()[0] == first_sha
    assert first.digest == second.digest
    manifest = first.manifest.read_text()
    assert manifest == second.manifest.read_text()
    lines = manifest.splitlines()
    assert lines == sorted(lines)  # bytewise, as LC_ALL=C sort wrote it
    names = [line.split("=", 1)[0] for line in lines]
    for package in ("python3", "gcc", "g++", "make", "libc6-dev", "xz-utils", "file"):
        assert package in names


def test_unchanged_rebuild_is_skipped(builds: tuple[Build, Build]) -> None:
    _, second = builds
    again = _build(second.out, force=False)
    assert again.digest == second.digest
    assert any("skipping" in line for line in again.log), again.log
    assert not any("rootfs built in" in line for line in again.log)
    assert again.seconds < 60


def test_image_is_loaded_under_its_config_digest(
    builds: tuple[Build, Build], client: docker.DockerClient
) -> None:
    digest = builds[0].digest
    assert image_present(client, digest)
    require_image(client, digest)
    image = client.images.get(digest)
    assert image.id == digest
    attrs = image.attrs
    epoch = int((BUILD_SCRIPT.parent / "SOURCE_DATE_EPOCH").read_text())
    created = dt.datetime.fromtimestamp(epoch, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert attrs["Created"] == created
    assert attrs["Architecture"] == "amd64"
    assert attrs["Os"] == "linux"
    assert attrs["Config"]["User"] == "1000:1000"
    assert attrs["Config"]["WorkingDir"] == "/src"
    assert attrs["Config"]["Env"] == [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    ]
    layer_sha = _sha256(builds[0].tarball)
    assert attrs["RootFS"]["Layers"] == [f"sha256:{layer_sha}"]


def test_container_has_the_build_toolchain(
    builds: tuple[Build, Build], client: docker.DockerClient
) -> None:
    container = client.containers.create(
        builds[0].digest, command=["python3", "-c", PROBE], network_disabled=True
    )
    try:
        container.start()
        status = container.wait(timeout=300)
        logs = container.logs(stdout=True, stderr=True).decode()
        assert status["StatusCode"] == 0, logs
        probe = json.loads(container.logs(stdout=True, stderr=False).decode())
    finally:
        container.remove(force=True)
    assert probe["uid"] == 1000
    assert probe["gid"] == 1000
    assert probe["cwd"] == "/src"
    assert probe["python"] == [3, 11]
    assert probe["gcc"].startswith("12")
    assert probe["ran"] == "compiled"
    for directory in ("/src", "/deps", "/out"):
        assert probe["dirs"][directory] == {"isdir": True, "entries": []}
    assert probe["tmp_mode"] == "0o1777"


def test_absent_or_malformed_digest_is_refused(client: docker.DockerClient) -> None:
    absent = "sha256:" + "0" * 64
    assert not image_present(client, absent)
    with pytest.raises(
        ImageError, match=r"not present; build it with deploy/builder-image/build\.sh"
    ):
        require_image(client, absent)
    for bad in ("farm-builder:bookworm", "sha256:abc", "sha256:" + "A" * 64):
        with pytest.raises(ImageError, match="not an image digest"):
            image_present(client, bad)
