"""The runner's checks that need no Docker Engine, and its host-side unpacking of /out.

The unpacking is the trust boundary: a hostile build controls the tar stream of /out,
so every entry is checked before anything touches the host.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from builders.errors import OutputError, SandboxError
from builders.runner import (
    FIXED_ENV,
    RunSpec,
    _ChunkReader,
    _unpack,
    remove_stale,
    run_hermetic,
)
from farm.errors import ImageError
from farm.recipe import Limits

Adder = Callable[[tarfile.TarFile], None]


def make_tar(*adders: Adder) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for add in adders:
            add(tar)
    return buf.getvalue()


def entry(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", link: str = "") -> Adder:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.linkname, info.mode = (
            kind,
            link,
            0o755 if kind == tarfile.DIRTYPE else 0o644,
        )
        info.size = len(data) if kind == tarfile.REGTYPE else 0
        tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)

    return add


def unpack(data: bytes, dest: Path) -> None:
    dest.mkdir(exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as tar:
        _unpack(tar, dest)


def test_plain_tree_is_recreated(tmp_path: Path) -> None:
    data = make_tar(
        entry("./", tarfile.DIRTYPE),
        entry("./dist", tarfile.DIRTYPE),
        entry("./dist/a.whl", data=b"wheel"),
        entry("./dist/b.whl", tarfile.LNKTYPE, link="./dist/a.whl"),
        entry("./dist/link", tarfile.SYMTYPE, link="/etc/passwd"),
        entry("./fifo", tarfile.FIFOTYPE),
    )
    out = tmp_path / "out"
    unpack(data, out)
    assert (out / "dist/a.whl").read_bytes() == b"wheel"
    assert (out / "dist/b.whl").stat().st_ino == (out / "dist/a.whl").stat().st_ino
    assert (out / "dist/link").is_symlink()  # recreated, not followed: collect refuses it
    assert (out / "fifo").is_fifo()


@pytest.mark.parametrize(
    ("adders", "message"),
    [
        ((entry("/etc/cron.d/evil", data=b"x"),), "escapes"),
        ((entry("../evil", data=b"x"),), "escapes"),
        ((entry("./a/../../evil", data=b"x"),), "escapes"),
        # a symlink to a host directory, then a file "inside" it: never written through
        ((entry("./d", tarfile.SYMTYPE, link="/tmp"), entry("./d/evil", data=b"x")), "parent"),
        ((entry("./h", tarfile.LNKTYPE, link="/etc/passwd"),), "escapes"),
        ((entry("./h", tarfile.LNKTYPE, link="missing"),), "hard link"),
        (
            (
                entry("./s", tarfile.SYMTYPE, link="/etc/passwd"),
                entry("./h", tarfile.LNKTYPE, link="s"),
            ),
            "hard link",
        ),
        ((entry("./dev", tarfile.CHRTYPE),), "device"),
    ],
)
def test_hostile_entries_are_refused(
    tmp_path: Path, adders: tuple[Adder, ...], message: str
) -> None:
    with pytest.raises(OutputError, match=message):
        unpack(make_tar(*adders), tmp_path / "out")
    assert not (tmp_path / "evil").exists()
    assert not Path("/tmp/evil").exists()


def test_duplicate_entry_is_not_overwritten(tmp_path: Path) -> None:
    data = make_tar(entry("./f", data=b"one"), entry("./f", data=b"two"))
    with pytest.raises(FileExistsError):
        unpack(data, tmp_path / "out")
    assert (tmp_path / "out/f").read_bytes() == b"one"


def test_stream_is_bounded() -> None:
    reader = _ChunkReader(iter([b"a" * 600, b"b" * 600]), limit=1000)
    assert reader.read(600) == b"a" * 600
    with pytest.raises(OutputError, match="more than the limit of 1000"):
        reader.read(600)


# --- checks before any container --------------------------------------------------------

NOWHERE = "unix:///nonexistent/docker.sock"


def spec(tmp_path: Path, **overrides: object) -> RunSpec:
    fields: dict[str, object] = {
        "image": "sha256:" + "a" * 64,
        "script": "true",
        "workdir": "/src",
        "env": {"TZ": "UTC", "SOURCE_DATE_EPOCH": "0"},
        "source_dir": tmp_path,
        "deps_dir": None,
        "limits": Limits(),
        "arch": "amd64",
        "labels": {"farm.build-id": "b1"},
    }
    fields.update(overrides)
    return RunSpec(**fields)  # type: ignore[arg-type]


@pytest.fixture
def nowhere() -> docker.DockerClient:
    return docker.DockerClient(base_url=NOWHERE, version="1.41")


@pytest.mark.parametrize(
    "image", ["busybox", "busybox:latest", "busybox@sha256:" + "a" * 64, "sha256:abc", ""]
)
def test_image_must_be_an_id(nowhere: docker.DockerClient, tmp_path: Path, image: str) -> None:
    with pytest.raises(ImageError, match="named by its ID"):
        run_hermetic(nowhere, spec(tmp_path, image=image), tmp_path / "w")


def test_unreachable_engine_is_a_sandbox_error(
    nowhere: docker.DockerClient, tmp_path: Path
) -> None:
    with pytest.raises(SandboxError, match="cannot inspect image"):
        run_hermetic(nowhere, spec(tmp_path), tmp_path / "w")
    with pytest.raises(SandboxError, match="cannot list containers"):
        remove_stale(nowhere, {"farm.build-id": "b1"})


def test_remove_stale_needs_a_label(nowhere: docker.DockerClient) -> None:
    with pytest.raises(SandboxError, match="at least one label"):
        remove_stale(nowhere, {})


def test_fixed_env_names() -> None:
    assert FIXED_ENV["PATH"] == "/usr/local/bin:/usr/bin:/bin"
    assert FIXED_ENV["HOME"] == "/tmp/home"
