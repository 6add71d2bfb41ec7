"""The arm64 builder image is reproducible and runs under QEMU on this host.

Compares two builds of ``deploy/builder-image/build.sh --arch arm64``: the one in its
default folder (made by ``deploy/setup.sh``, reused when its inputs are unchanged, or
made now) and one forced from scratch into a folder of the test's own; their image IDs
and rootfs tarballs must be equal. Then it
runs containers of the image with ``--platform linux/arm64``: Python reports ``aarch64``
and gcc compiles and runs a program, all under the kernel's qemu-aarch64 binfmt handler.

Needs root, a Docker Engine, Debian's mirror, and the handler registered with the F flag
(``deploy/setup.sh`` does it via ``deploy/builder-image/enable-arm64.sh``). Without the
handler the test fails, on purpose: CI runs setup.sh first, so a missing handler is a
broken setup, not a reason to skip. One cold build takes minutes (every maintainer
script runs emulated); the ``.debs`` are cached in ``$FARM_CACHE/debs-arm64``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from builders.arch import buildable_arches
from builders.image import BUILD_SCRIPT

pytestmark = [
    pytest.mark.docker,
    pytest.mark.image,
    pytest.mark.slow,
    pytest.mark.timeout(3600),
]

NAME = "farm-builder-bookworm-arm64"
TAG = "farm-builder:bookworm-arm64"
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")

# Runs inside the arm64 container as its default user; prints one JSON object.
PROBE = r"""
import json, platform, subprocess, pathlib
src = pathlib.Path("/tmp/probe.c")
src.write_text("#include <stdio.h>\nint main(void){puts(\"compiled\");return 0;}\n")
subprocess.run(["gcc", "-o", "/tmp/probe", str(src)], check=True)
print(json.dumps({
    "machine": platform.machine(),
    "gcc": subprocess.run(["gcc", "--version"], capture_output=True, text=True,
                          check=True).stdout.splitlines()[0],
    "target": subprocess.run(["gcc", "-dumpmachine"], capture_output=True, text=True,
                             check=True).stdout.strip(),
    "file": subprocess.run(["file", "-b", "/tmp/probe"], capture_output=True, text=True,
                           check=True).stdout.strip(),
    "ran": subprocess.run(["/tmp/probe"], capture_output=True, text=True,
                          check=True).stdout.strip(),
}))
"""


@dataclass(frozen=True)
class Build:
    digest: str
    out: Path
    stderr: str
    seconds: float

    @property
    def tarball(self) -> Path:
        return self.out / f"{NAME}.tar"


#: Where build.sh writes when given no --out (deploy/setup.sh's build).
DEFAULT_OUT = Path(os.environ.get("FARM_CACHE", "/var/cache/farm")) / "builder-image"


def _build(out: Path | None, *, force: bool) -> Build:
    argv = ["bash", str(BUILD_SCRIPT), "--arch", "arm64"]
    if out is not None:
        argv += ["--out", str(out)]
    if force:
        argv.append("--force")
    start = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=1800, check=False)
    seconds = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert lines, proc.stderr[-3000:]
    return Build(lines[-1], out or DEFAULT_OUT, proc.stderr, seconds)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=600, check=False
    )


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Build, Build]]:
    """Two arm64 builds: setup.sh's, in the default folder (reused if its inputs are
    unchanged, else made now), and one forced from scratch into a fresh folder.

    Fails at once (no build) when this host cannot run arm64: that is a setup error.
    The tarballs are deleted afterwards; the image stays loaded, tagged TAG.
    """
    assert "arm64" in buildable_arches(), (
        "this host cannot run arm64: register the qemu-aarch64 binfmt handler with the "
        "F flag (bash deploy/builder-image/enable-arm64.sh, run by deploy/setup.sh)"
    )
    root = tmp_path_factory.mktemp("builder-image-arm64")
    try:
        first = _build(None, force=False)
        second = _build(root / "second", force=True)
        print(f"arm64 builds took {first.seconds:.0f} s and {second.seconds:.0f} s")
        yield first, second
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_two_arm64_builds_are_bit_identical(builds: tuple[Build, Build]) -> None:
    first, second = builds
    assert "rootfs built in" in second.stderr, second.stderr[-2000:]  # mmdebstrap ran
    for build in builds:
        assert DIGEST.fullmatch(build.digest), build.digest
        assert (build.out / f"{NAME}.image-id").read_text().strip() == build.digest
        assert "arch=arm64" in (build.out / f"{NAME}.buildinfo").read_text().splitlines()
    first_sha = _sha256(first.tarball)
    assert first_sha == _sha256(second.tarball)
    assert (first.out / f"{NAME}.tar.sha256").read_text().split()[0] == first_sha
    assert first.digest == second.digest
    manifest = (first.out / f"{NAME}.packages.txt").read_text()
    assert manifest == (second.out / f"{NAME}.packages.txt").read_text()
    names = {line.split("=", 1)[0] for line in manifest.splitlines()}
    assert {"python3", "gcc", "g++", "make", "libc6-dev", "file"} <= names


def test_arm64_image_config_and_tag(builds: tuple[Build, Build]) -> None:
    digest = builds[0].digest
    proc = _docker("image", "inspect", TAG)
    assert proc.returncode == 0, proc.stderr
    (attrs,) = json.loads(proc.stdout)
    assert attrs["Id"] == digest
    assert attrs["Architecture"] == "arm64"
    assert attrs["Variant"] == "v8"
    assert attrs["Os"] == "linux"
    assert attrs["Config"]["User"] == "1000:1000"
    assert attrs["RootFS"]["Layers"] == [f"sha256:{_sha256(builds[0].tarball)}"]


def test_arm64_container_runs_under_qemu(builds: tuple[Build, Build]) -> None:
    proc = _docker(
        "run", "--rm", "--platform", "linux/arm64", TAG,
        "python3", "-c", "import platform; print(platform.machine())",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "aarch64"


def test_arm64_image_has_the_toolchain(builds: tuple[Build, Build]) -> None:
    proc = _docker(
        "run", "--rm", "--platform", "linux/arm64", "--network", "none", builds[0].digest,
        "python3", "-c", PROBE,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    probe = json.loads(proc.stdout)
    assert probe["machine"] == "aarch64"
    assert probe["gcc"].startswith("gcc (Debian 12"), probe["gcc"]
    assert probe["target"] == "aarch64-linux-gnu"
    assert "ARM aarch64" in probe["file"], probe["file"]
    assert probe["ran"] == "compiled"
