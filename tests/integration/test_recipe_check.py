"""``farm recipe check`` end to end: real builds in the real builder image, real diffoscope.

One run checks three recipes — a shipped one (tomli, which matches upstream), one that
writes the time, hostname, umask and CPU count into its output, and a deterministic
one whose ``upstream`` pins another wheel, served by a real HTTP server — and the
tests read its lines, its exit status and what it kept in ``--work``.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import os
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from builders.runner import RunSpec, run_hermetic
from farm.recipe import Limits
from tests.integration.conftest import write_recipe
from tests.support.git import new_repo

pytestmark = [pytest.mark.docker, pytest.mark.image, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
TOMLI = REPO / "recipes" / "tomli" / "2.2.1.yaml"
WHEEL = "demo-1.0-py3-none-any.whl"

# Writes a wheel-shaped zip with fixed times and modes: deterministic.
ZIP_SCRIPT = """\
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w") as z:
    for name, data in (("demo/__init__.py", sys.argv[2]), ("demo/data.txt", "some data\\n")):
        z.writestr(zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0)), data)
"""
STAMP_COMMAND = """\
date +%s.%N > /out/stamp.txt
hostname >> /out/stamp.txt
umask >> /out/stamp.txt
nproc >> /out/stamp.txt
"""


def _git_repo(root: Path) -> dict[str, str]:
    repo = root / "upstream"
    repo.mkdir()
    (repo / "make_zip.py").write_text(ZIP_SCRIPT)
    commit = new_repo(repo, date="2024-01-01T00:00:00Z")
    return {"type": "git", "url": str(repo), "commit": commit}


@pytest.fixture(scope="module")
def upstream_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A real HTTP server of a directory: (base URL, directory)."""
    root = tmp_path_factory.mktemp("upstream-files")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def _farm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "farm.cli", "recipe", "check", *args],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        cwd=REPO,
        env={**os.environ, "COLUMNS": "400"},
    )


@dataclass(frozen=True)
class Checked:
    proc: subprocess.CompletedProcess[str]
    work: Path
    differs: Path
    nondet: Path
    root: Path

    def line(self, path: Path) -> str:
        (line,) = [x for x in self.proc.stdout.splitlines() if x.startswith(f"{path}: ")]
        return line


@pytest.fixture(scope="module")
def checked(
    tmp_path_factory: pytest.TempPathFactory,
    builder_image: str,
    upstream_server: tuple[str, Path],
) -> Checked:
    root = tmp_path_factory.mktemp("check")
    source = _git_repo(root)
    url, served = upstream_server
    # Upstream's wheel: the same files, but demo/__init__.py says x = 2.
    subprocess.run([sys.executable, "-c", ZIP_SCRIPT, str(served / WHEEL), "x = 2\n"], check=True)
    digest = hashlib.sha256((served / WHEEL).read_bytes()).hexdigest()
    recipes = root / "recipes"
    differs = write_recipe(
        recipes,
        builder_image,
        source,
        f"python3 make_zip.py /out/{WHEEL} 'x = 1\n'",
        [WHEEL],
        name="demo",
        upstream=[{"output": WHEEL, "sha256": digest, "url": f"{url}/{WHEEL}"}],
    )
    nondet = write_recipe(
        recipes, builder_image, source, STAMP_COMMAND, ["stamp.txt"], name="stamp"
    )
    work = root / "work"
    proc = _farm(
        str(TOMLI), str(differs), str(nondet), "--work", str(work), "--cache", str(root / "cache")
    )
    return Checked(proc, work, differs, nondet, root)


def test_a_shipped_recipe_is_verified(checked: Checked) -> None:
    assert checked.line(TOMLI) == f"{TOMLI}: tomli==2.2.1: verified", checked.proc.stdout


def test_a_build_that_writes_time_and_host_is_not_deterministic(checked: Checked) -> None:
    line = checked.line(checked.nondet)
    assert line == (
        f"{checked.nondet}: stamp==1.0: not deterministic: stamp.txt differs between the builds"
    )
    assert checked.proc.returncode == 1, checked.proc.stdout + checked.proc.stderr


def test_the_two_builds_really_ran_under_different_variation(checked: Checked) -> None:
    work = next(checked.work.glob("*/build-1/run/out/stamp.txt")).parents[3]
    first = (work / "build-1/run/out/stamp.txt").read_text().split("\n")
    second = (work / "build-2/run/out/stamp.txt").read_text().split("\n")
    assert first[1:3] == ["farm-check-a", "0022"]
    assert second[1:3] == ["farm-check-b", "0077"]
    assert float(second[0]) > float(first[0])  # the clock is real (no libfaketime in the image)
    assert int(second[3]) == 1
    assert int(first[3]) == min(len(os.sched_getaffinity(0)), 2)
    assert (work / "diffoscope" / "1" / "report.html").is_file()


def test_a_deterministic_build_that_is_not_upstreams(checked: Checked) -> None:
    line = checked.line(checked.differs)
    assert line == (
        f"{checked.differs}: demo==1.0: differs from upstream: "
        f"{WHEEL} differs from upstream in demo/__init__.py, (archive metadata)"
    )
    # Deterministic but differing from upstream alone exits 0, as --help says.
    alone = _farm(str(checked.differs), "--cache", str(checked.root / "cache"))
    assert alone.returncode == 0, alone.stdout + alone.stderr
    assert "differs from upstream in demo/__init__.py" in alone.stdout
    assert "1 recipe(s): 1 differs from upstream" in alone.stdout


def test_bad_input_is_one_line_each_and_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad" / "1.0.yaml"
    bad.parent.mkdir()
    bad.write_text("name: [unclosed\n")
    absent_image = tmp_path / "tomli" / "2.2.1.yaml"
    absent_image.parent.mkdir()
    text = TOMLI.read_text()
    pinned = next(x for x in text.splitlines() if x.startswith("image: "))
    absent_image.write_text(text.replace(pinned, "image: sha256:" + "0" * 64))
    missing = tmp_path / "missing" / "1.0.yaml"
    proc = _farm(str(bad), str(absent_image), str(missing), "--cache", str(tmp_path / "c"))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    out = proc.stdout
    assert f"{bad}: failed: lint: line 2: (yaml): " in out
    assert f"{missing}: failed: lint: (file): no such file" in out
    assert f"{absent_image}: tomli==2.2.1: failed: build 1: builder image sha256:000" in out
    assert "is not present" in out
    nothing = _farm(str(tmp_path / "empty-dir-that-is-absent" / "x.txt"))
    assert nothing.returncode == 1 and "Traceback" not in nothing.stderr


@pytest.fixture(scope="module")
def faketime_image(
    builder_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[docker.DockerClient, str]]:
    """The builder image plus Debian's libfaketime (the same bookworm package), removed after."""
    root = tmp_path_factory.mktemp("faketime")
    subprocess.run(["apt-get", "download", "libfaketime"], cwd=root, check=True, timeout=300)
    (deb,) = root.glob("libfaketime_*.deb")
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root / "x")], check=True)
    lib = "usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(root / "x" / lib, arcname=lib)
    client = docker.from_env()
    container = client.containers.create(builder_image, command=["true"])
    try:
        container.put_archive("/", buf.getvalue())
        image = container.commit()
    finally:
        container.remove(force=True)
    try:
        yield client, str(image.id)
    finally:
        client.images.remove(str(image.id), force=True)
        client.close()


def test_the_clock_is_shifted_where_the_image_has_libfaketime(
    faketime_image: tuple[docker.DockerClient, str], tmp_path: Path
) -> None:
    client, image = faketime_image
    (tmp_path / "src").mkdir()
    script = "date +%s > /out/t"

    def clock(offset: int, env: dict[str, str], work: str) -> tuple[int, int]:
        spec = RunSpec(
            image=image,
            script=script,
            workdir="/",
            env={"TZ": "UTC", "SOURCE_DATE_EPOCH": "1", **env},
            source_dir=tmp_path / "src",
            deps_dir=None,
            limits=Limits(timeout=60),
            arch="amd64",
            labels={"farm.test": "faketime"},
            time_offset_s=offset,
        )
        before = time.time()
        run = run_hermetic(client, spec, tmp_path / work)
        assert run.exit_code == 0, run.log
        return int((tmp_path / work / "out" / "t").read_text()) - int(before), run.clock_offset_s

    day = 86400
    shifted, applied = clock(400 * day, {}, "a")
    assert applied == 400 * day and 400 * day - 5 <= shifted <= 400 * day + 60
    # The recipe's own FAKETIME (or LD_PRELOAD) is the recipe's: the variation stands back.
    shifted, applied = clock(400 * day, {"FAKETIME": "+0"}, "b")
    assert applied == 0 and shifted < 60
