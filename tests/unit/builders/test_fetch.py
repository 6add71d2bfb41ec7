"""Pure parts of builders.fetch and the safe extractor (archives built in tmp_path)."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import time
import zipfile
from pathlib import Path
from typing import Literal

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from builders._extract import ExtractLimits, extract_archive, normalized_parts
from builders.errors import FetchError
from builders.fetch import (
    IndexFile,
    human_size,
    index_files,
    mirror_name,
    normalize_project,
    select_file,
    url_allowed,
)

SHA_A = "a" * 64
SHA_B = "b" * 64

# --- helpers ------------------------------------------------------------------------


TarMode = Literal["w", "w:gz", "w:bz2", "w:xz"]


Member = tuple[tarfile.TarInfo, bytes | None]


def make_tar(path: Path, members: list[Member], mode: TarMode) -> Path:
    with tarfile.open(path, mode) as tf:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                tf.addfile(info)
    return path


def reg(name: str, mode: int = 0o644, mtime: int = 1_000_000_000) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = mode
    info.mtime = mtime
    return info


def special(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mtime = 1_000_000_000
    return info


def extract(archive: Path, tmp_path: Path, strip: int = 0, **limits: int) -> Path:
    root = tmp_path / "out"
    root.mkdir()
    extract_archive(archive, root, strip_components=strip, limits=ExtractLimits(**limits))
    return root


# --- pure helpers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "normalized"),
    [("IniConfig", "iniconfig"), ("zope.interface", "zope-interface"), ("a__b-.c", "a-b-c")],
)
def test_normalize_project(name: str, normalized: str) -> None:
    assert normalize_project(name) == normalized


@pytest.mark.parametrize(
    ("n", "text"),
    [(None, "size unknown"), (999, "999 B"), (4793, "4.8 kB"), (2_500_000, "2.5 MB"),
     (7 * 10**12, "7000.0 GB")],
)  # fmt: skip
def test_human_size(n: int | None, text: str) -> None:
    assert human_size(n) == text


def test_mirror_name_is_stable_and_url_specific() -> None:
    assert mirror_name("https://x/a.git") == mirror_name("https://x/a.git")
    assert mirror_name("https://x/a.git") != mirror_name("https://x/b.git")
    assert mirror_name("https://x/a.git").endswith(".git")


BASE = httpx.URL("http://127.0.0.1:8000/pypi-root/")


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://files.pythonhosted.org/x.tar.gz", True),
        ("https://anywhere.example/x", True),
        ("http://127.0.0.1:8000/pypi-root/files/x.tar.gz", True),
        ("http://127.0.0.1:8000/pypi-root", True),
        ("http://127.0.0.1:8000/elsewhere/x", False),
        ("http://127.0.0.1:8000/pypi-rootx/x", False),
        ("http://127.0.0.1:9000/pypi-root/x", False),
        ("http://evil.example/pypi-root/x", False),
        ("ftp://127.0.0.1:8000/pypi-root/x", False),
    ],
)
def test_url_allowed(url: str, allowed: bool) -> None:
    assert url_allowed(httpx.URL(url), BASE) is allowed


def test_index_files_resolves_relative_urls_and_skips_junk() -> None:
    entries = [
        {
            "filename": "p-1.tar.gz",
            "url": "../../packages/p-1.tar.gz",
            "digests": {"sha256": SHA_A.upper()},
            "size": 10,
            "packagetype": "sdist",
        },
        {"filename": "broken", "url": "x"},  # no digests
        "not a dict",
        {
            "filename": "p-1.whl",
            "url": "https://f/p.whl",
            "digests": {"sha256": SHA_B},
            "size": True,
        },
    ]
    files = index_files(entries, "https://pypi.org/pypi/p/json")
    assert files == [
        IndexFile("p-1.tar.gz", "https://pypi.org/packages/p-1.tar.gz", SHA_A, 10, "sdist"),
        IndexFile("p-1.whl", "https://f/p.whl", SHA_B, None, ""),
    ]
    assert index_files({"not": "a list"}, "https://pypi.org/") == []


FILES = [
    IndexFile("p-1.tar.gz", "https://f/p-1.tar.gz", SHA_A, 10, "sdist"),
    IndexFile("p-1-py3-none-any.whl", "https://f/p.whl", SHA_B, 10, "bdist_wheel"),
]


@pytest.mark.parametrize(
    ("sha256", "filename", "sdist_only", "expected"),
    [
        (SHA_A, None, True, "p-1.tar.gz"),
        (SHA_A, "p-1.tar.gz", True, "p-1.tar.gz"),
        (SHA_B, None, False, "p-1-py3-none-any.whl"),
        (SHA_B, None, True, "is a bdist_wheel, not an sdist"),
        (SHA_A, "p-1.zip", False, "is p-1.tar.gz, not p-1.zip"),
        (SHA_B, "p-1.tar.gz", False, f"p-1.tar.gz has sha256 {SHA_A}, not the pinned {SHA_B}"),
        ("c" * 64, None, False, "no file has sha256 " + "c" * 64),
    ],
)
def test_select_file(sha256: str, filename: str | None, sdist_only: bool, expected: str) -> None:
    if expected.startswith("p-1") and " " not in expected:
        chosen = select_file(
            FILES, what="p==1", sha256=sha256, filename=filename, sdist_only=sdist_only
        )
        assert chosen.filename == expected
    else:
        with pytest.raises(FetchError, match=r"^p==1: ") as err:
            select_file(FILES, what="p==1", sha256=sha256, filename=filename, sdist_only=sdist_only)
        assert expected in str(err.value)


def test_select_file_refuses_a_path_as_file_name() -> None:
    evil = [IndexFile("../../etc/passwd", "https://f/x", SHA_A, 1, "sdist")]
    with pytest.raises(FetchError, match="refused"):
        select_file(evil, what="p==1", sha256=SHA_A)


@pytest.mark.parametrize(
    ("name", "parts"),
    [("a/b/c", ("a", "b", "c")), ("./a//b/", ("a", "b")), (".", ())],
)
def test_normalized_parts(name: str, parts: tuple[str, ...]) -> None:
    assert normalized_parts(name) == parts


@pytest.mark.parametrize(
    ("name", "why"), [("/etc/passwd", "absolute"), ("a/../../b", "'..'"), ("..", "'..'")]
)
def test_normalized_parts_refuses(name: str, why: str) -> None:
    with pytest.raises(FetchError, match=why):
        normalized_parts(name)


@given(st.lists(st.sampled_from(["a", "b", "..", ".", ""]), max_size=6))
def test_normalized_parts_never_escapes(parts: list[str]) -> None:
    name = "/".join(parts)
    try:
        result = normalized_parts(name)
    except FetchError:
        return
    assert ".." not in result and "" not in result and "." not in result


# --- extraction ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_tar_extraction_keeps_times_and_normalizes_modes(tmp_path: Path, mode: TarMode) -> None:
    archive = make_tar(
        tmp_path / "a.tar",
        [
            (special("pkg-1", tarfile.DIRTYPE), None),
            (reg("pkg-1/setup.py", 0o664, 1_200_000_000), b"print(1)\n"),
            (reg("pkg-1/bin/run", 0o775, 1_300_000_000), b"#!/bin/sh\n"),
            (special("pkg-1/link", tarfile.SYMTYPE, "setup.py"), None),
            (special("pkg-1/hard", tarfile.LNKTYPE, "pkg-1/setup.py"), None),
        ],
        mode,
    )
    root = extract(archive, tmp_path, strip=1)
    assert sorted(p.name for p in root.iterdir()) == ["bin", "hard", "link", "setup.py"]
    assert (root / "setup.py").read_bytes() == b"print(1)\n"
    assert stat.S_IMODE((root / "setup.py").stat().st_mode) == 0o644
    assert stat.S_IMODE((root / "bin" / "run").stat().st_mode) == 0o755
    assert stat.S_IMODE((root / "bin").stat().st_mode) == 0o755
    assert (root / "setup.py").stat().st_mtime == 1_200_000_000
    assert (root / "bin" / "run").stat().st_mtime == 1_300_000_000
    # bin/ is not listed: it gets the newest member time, not the time of extraction
    assert (root / "bin").stat().st_mtime == 1_300_000_000
    assert root.stat().st_mtime == 1_000_000_000  # the time of pkg-1/, stripped into root
    assert (root / "link").is_symlink() and str((root / "link").readlink()) == "setup.py"
    assert (root / "hard").stat().st_ino == (root / "setup.py").stat().st_ino


def test_strip_components_zero_and_two(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "a.tar", [(reg("a/b/c.txt"), b"x"), (reg("top"), b"y")], "w")
    root = extract(archive, tmp_path, strip=0)
    assert (root / "a" / "b" / "c.txt").read_bytes() == b"x"
    assert (root / "top").read_bytes() == b"y"
    root2 = tmp_path / "two"
    root2.mkdir()
    extract_archive(archive, root2, strip_components=2)
    # "top" has too few components: skipped
    assert sorted(p.name for p in root2.iterdir()) == ["c.txt"]


@pytest.mark.parametrize(
    ("members", "match"),
    [
        ([(reg("/etc/passwd"), b"x")], "'/etc/passwd': absolute path refused"),
        ([(reg("pkg/../../evil"), b"x")], "'pkg/../../evil': '..' in path refused"),
        ([(special("pkg/l", tarfile.SYMTYPE, "/etc/passwd"), None)], "'pkg/l': symlink to '/etc"),
        ([(special("pkg/l", tarfile.SYMTYPE, "../../x"), None)], "'pkg/l': symlink.*outside"),
        ([(special("pkg/h", tarfile.LNKTYPE, "/etc/passwd"), None)], "absolute path refused"),
        ([(special("pkg/h", tarfile.LNKTYPE, "pkg/missing"), None)], "'pkg/h': hardlink.*not in"),
        ([(special("pkg/dev", tarfile.CHRTYPE), None)], "'pkg/dev': device file refused"),
        ([(special("pkg/blk", tarfile.BLKTYPE), None)], "'pkg/blk': device file refused"),
        ([(special("pkg/fifo", tarfile.FIFOTYPE), None)], "'pkg/fifo': fifo refused"),
        ([(reg("pkg/a"), b"1"), (reg("pkg/a"), b"2")], "'pkg/a': appears twice"),
        # a symlink to a directory, then a file written "through" it
        (
            [(special("pkg/d", tarfile.SYMTYPE, "."), None), (reg("pkg/d/x"), b"1")],
            "'pkg/d/x': parent d is not a directory",
        ),
        # each link stays inside lexically, but together they resolve outside
        (
            [
                (special("pkg/s", tarfile.SYMTYPE, "."), None),
                (special("pkg/t", tarfile.SYMTYPE, "s/.."), None),
            ],
            "'pkg/t': symlink resolves outside the tree",
        ),
    ],
)
def test_tar_refusals_name_the_member(
    tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], match: str
) -> None:
    archive = make_tar(tmp_path / "bad.tar.gz", members, "w:gz")
    outside = tmp_path / "evil"
    with pytest.raises(FetchError, match=match):
        extract(archive, tmp_path, strip=1)
    assert not outside.exists()


def test_size_and_member_caps(tmp_path: Path) -> None:
    bomb = make_tar(tmp_path / "bomb.tar.gz", [(reg("p/zeros"), bytes(100_000))], "w:gz")
    with pytest.raises(FetchError, match="'p/zeros': archive expands beyond 50000 bytes"):
        extract(bomb, tmp_path, strip=1, max_bytes=50_000)
    many = make_tar(tmp_path / "many.tar", [(reg(f"p/{i}"), b"") for i in range(20)], "w")
    (tmp_path / "many").mkdir()
    with pytest.raises(FetchError, match="more than 10 members"):
        extract(many, tmp_path / "many", max_members=10)


def test_not_an_archive(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"hello, not an archive" * 40)
    with pytest.raises(FetchError, match="not a tar"):
        extract(junk, tmp_path)
    truncated = tmp_path / "t.tar.gz"
    good = make_tar(tmp_path / "g.tar.gz", [(reg("p/a"), os.urandom(50_000))], "w:gz")
    truncated.write_bytes(good.read_bytes()[:20_000])
    (tmp_path / "o2").mkdir()
    with pytest.raises(FetchError, match="cannot extract tar"):
        extract_archive(truncated, tmp_path / "o2")


# --- zip ----------------------------------------------------------------------------


def zinfo(name: str, mode: int, date: tuple[int, int, int, int, int, int]) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date)
    info.create_system = 3
    info.external_attr = mode << 16
    return info


def test_zip_extraction(tmp_path: Path) -> None:
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(zinfo("p-1/", stat.S_IFDIR | 0o755, (2001, 1, 1, 0, 0, 0)), b"")
        zf.writestr(zinfo("p-1/a.py", stat.S_IFREG | 0o600, (2002, 2, 2, 2, 2, 2)), b"a")
        zf.writestr(zinfo("p-1/run", stat.S_IFREG | 0o700, (2003, 3, 3, 3, 3, 4)), b"r")
        zf.writestr(zinfo("p-1/l", stat.S_IFLNK | 0o777, (2003, 3, 3, 3, 3, 4)), b"a.py")
    root = extract(archive, tmp_path, strip=1)
    assert (root / "a.py").read_bytes() == b"a"
    assert stat.S_IMODE((root / "a.py").stat().st_mode) == 0o644
    assert stat.S_IMODE((root / "run").stat().st_mode) == 0o755
    # DOS times are read as UTC, so every host gets the same mtime
    assert (root / "a.py").stat().st_mtime == 1012615322
    assert root.stat().st_mtime == 978307200
    assert str((root / "l").readlink()) == "a.py"


def test_zip_extended_timestamp_wins(tmp_path: Path) -> None:
    archive = tmp_path / "ut.zip"
    info = zinfo("f", stat.S_IFREG | 0o644, (2002, 2, 2, 2, 2, 2))
    info.extra = b"UT\x05\x00\x01" + (1_234_567_890).to_bytes(4, "little")
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(info, b"x")
    root = extract(archive, tmp_path)
    assert (root / "f").stat().st_mtime == 1_234_567_890


@pytest.mark.parametrize(
    ("name", "mode", "data", "match"),
    [
        ("/abs", stat.S_IFREG | 0o644, b"x", "'/abs': absolute path refused"),
        ("a/../../x", stat.S_IFREG | 0o644, b"x", "'\\.\\.' in path refused"),
        ("l", stat.S_IFLNK | 0o777, b"/etc/passwd", "'l': symlink to '/etc/passwd'"),
        ("l", stat.S_IFLNK | 0o777, b"../x", "'l': symlink.*outside"),
        ("dev", stat.S_IFCHR | 0o644, b"", "'dev': device file refused"),
        ("fifo", stat.S_IFIFO | 0o644, b"", "'fifo': special file"),
    ],
)
def test_zip_refusals(tmp_path: Path, name: str, mode: int, data: bytes, match: str) -> None:
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(zinfo(name, mode, (2000, 1, 1, 0, 0, 0)), data)
    with pytest.raises(FetchError, match=match):
        extract(archive, tmp_path)


def test_zip_bomb_stops_at_cap(tmp_path: Path) -> None:
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("big", bytes(3 * 2**20))
    assert archive.stat().st_size < 10_000
    with pytest.raises(FetchError, match="'big': archive expands beyond"):
        extract(archive, tmp_path, max_bytes=2**20)


def test_extraction_is_reproducible(tmp_path: Path) -> None:
    archive = make_tar(
        tmp_path / "a.tar.gz",
        [(reg("p/x/y/z"), b"z"), (reg("p/x/w", 0o755), b"w")],
        "w:gz",
    )
    trees = []
    for name in ("one", "two"):
        root = tmp_path / name
        root.mkdir()
        extract_archive(archive, root, strip_components=1)
        time.sleep(0.01)
        trees.append(
            sorted(
                (str(p.relative_to(root)), p.lstat().st_mode, p.lstat().st_mtime)
                for p in root.rglob("*")
            )
        )
    assert trees[0] == trees[1]


def test_the_fetch_package_keeps_every_name_it_offered() -> None:
    import builders.fetch

    offered = {
        "FIXED_MTIME",
        "FetchLimits",
        "Fetcher",
        "IndexFile",
        "git_tree_id",
        "human_size",
        "index_files",
        "mirror_name",
        "normalize_project",
        "select_file",
        "url_allowed",
    }
    assert offered <= set(builders.fetch.__all__)
    assert all(hasattr(builders.fetch, name) for name in offered)
    assert callable(builders.fetch.Fetcher._blob)  # the integration tests drive it directly
