"""Collecting declared outputs: only regular files inside the output directory."""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from builders.errors import OutputError
from builders.outputs import collect_outputs, glob_to_regex
from farm.recipe import Output

MiB = 2**20


def outs(*patterns: str) -> list[Output]:
    return [Output(path=p) for p in patterns]


@pytest.fixture
def out(tmp_path: Path) -> Path:
    d = tmp_path / "out"
    (d / "dist" / "sub").mkdir(parents=True)
    (d / "dist" / "pkg-1.0.tar.gz").write_bytes(b"sdist")
    (d / "dist" / "pkg-1.0-py3-none-any.whl").write_bytes(b"wheel")
    (d / "dist" / "sub" / "notes.txt").write_bytes(b"notes")
    (d / "README").write_bytes(b"readme")
    return d


def test_collects_declared_files_sorted_with_digests(out: Path) -> None:
    got = collect_outputs(out, outs("dist/*.whl", "dist/*.tar.gz"), max_total=MiB)
    assert [c.name for c in got] == ["dist/pkg-1.0-py3-none-any.whl", "dist/pkg-1.0.tar.gz"]
    whl = got[0]
    assert whl.sha256 == hashlib.sha256(b"wheel").hexdigest()
    assert whl.size == 5
    assert whl.path == out.resolve() / "dist/pkg-1.0-py3-none-any.whl"


@pytest.mark.parametrize(
    ("patterns", "names"),
    [
        (("README",), ["README"]),
        (("dist/*",), ["dist/pkg-1.0-py3-none-any.whl", "dist/pkg-1.0.tar.gz"]),  # * stays in dir
        (("**/*.txt",), ["dist/sub/notes.txt"]),
        (("dist",), ["dist/pkg-1.0-py3-none-any.whl", "dist/pkg-1.0.tar.gz", "dist/sub/notes.txt"]),
        (("dist/sub/",), ["dist/sub/notes.txt"]),
        (("*",), ["README"]),  # a glob does not pull in directories
        (("READM?", "README"), ["README"]),  # matched twice, collected once
        (("dist/pkg-1.0[.-]*",), ["dist/pkg-1.0-py3-none-any.whl", "dist/pkg-1.0.tar.gz"]),
    ],
)
def test_glob_forms(out: Path, patterns: tuple[str, ...], names: list[str]) -> None:
    assert [c.name for c in collect_outputs(out, outs(*patterns), max_total=MiB)] == names


def test_declared_output_matching_nothing_is_named(out: Path) -> None:
    with pytest.raises(OutputError, match=r"'dist/\*\.egg' matches no file"):
        collect_outputs(out, outs("dist/*.whl", "dist/*.egg"), max_total=MiB)


def test_empty_directory_is_not_an_output(out: Path) -> None:
    (out / "empty").mkdir()
    with pytest.raises(OutputError, match="'empty' matches no file"):
        collect_outputs(out, outs("empty"), max_total=MiB)
    with pytest.raises(OutputError, match="'emp\\*' matches no file"):
        collect_outputs(out, outs("emp*"), max_total=MiB)


def test_no_outputs_declared_is_an_error(out: Path) -> None:
    with pytest.raises(OutputError, match="no outputs declared"):
        collect_outputs(out, [], max_total=MiB)


def test_symlink_to_host_file_is_refused(out: Path) -> None:
    (out / "dist" / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(OutputError, match=r"dist/passwd: is a symlink to '/etc/passwd'"):
        collect_outputs(out, outs("dist/*"), max_total=MiB)


def test_relative_symlink_inside_is_refused_too(out: Path) -> None:
    (out / "alias.whl").symlink_to("dist/pkg-1.0-py3-none-any.whl")
    with pytest.raises(OutputError, match=r"alias\.whl: is a symlink"):
        collect_outputs(out, outs("*.whl"), max_total=MiB)


def test_symlinked_directory_is_not_followed(out: Path) -> None:
    (out / "etc").symlink_to("/etc")
    with pytest.raises(OutputError, match="matches no file"):
        collect_outputs(out, outs("etc/passwd"), max_total=MiB)
    with pytest.raises(OutputError, match="etc: is a symlink to '/etc'"):
        collect_outputs(out, outs("etc"), max_total=MiB)
    with pytest.raises(OutputError, match="matches no file"):
        collect_outputs(out, outs("**/passwd"), max_total=MiB)


def test_hard_link_to_outside_is_refused(out: Path, tmp_path: Path) -> None:
    secret = tmp_path / "host-secret"
    secret.write_bytes(b"secret")
    os.link(secret, out / "dist" / "stolen")
    with pytest.raises(OutputError, match="dist/stolen: is a hard link to a file outside"):
        collect_outputs(out, outs("dist/stolen"), max_total=MiB)


def test_hard_link_within_the_directory_is_fine(out: Path) -> None:
    os.link(out / "README", out / "dist" / "README.copy")
    got = collect_outputs(out, outs("README", "dist/README.copy"), max_total=MiB)
    assert [c.sha256 for c in got] == [hashlib.sha256(b"readme").hexdigest()] * 2


def test_fifo_and_socket_are_refused(out: Path) -> None:
    os.mkfifo(out / "pipe")
    with pytest.raises(OutputError, match="pipe: is a FIFO"):
        collect_outputs(out, outs("pipe"), max_total=MiB)
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(out / "sock"))
        with pytest.raises(OutputError, match="sock: is a socket"):
            collect_outputs(out, outs("sock"), max_total=MiB)
    finally:
        sock.close()


def test_escaping_pattern_is_refused(out: Path) -> None:
    with pytest.raises(OutputError, match="escapes"):
        collect_outputs(out, [Output.model_construct(path="../host")], max_total=MiB)
    with pytest.raises(OutputError, match="escapes"):
        collect_outputs(out, [Output.model_construct(path="/etc/passwd")], max_total=MiB)


def test_size_limits(out: Path) -> None:
    (out / "big").write_bytes(b"x" * 1000)
    with pytest.raises(OutputError, match="big: 1000 bytes is over the per-file limit of 999"):
        collect_outputs(out, outs("big"), max_total=MiB, max_file=999)
    with pytest.raises(OutputError, match=r"big: brings the outputs to 1006 bytes, over .* 1005"):
        collect_outputs(out, outs("big", "README"), max_total=1005)
    assert len(collect_outputs(out, outs("big", "README"), max_total=1006)) == 2


def test_large_file_is_hashed_in_chunks(out: Path) -> None:
    data = os.urandom(5 * MiB + 3)
    (out / "blob").write_bytes(data)
    (got,) = collect_outputs(out, outs("blob"), max_total=6 * MiB)
    assert got.sha256 == hashlib.sha256(data).hexdigest() and got.size == len(data)


def test_missing_output_dir(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="output directory"):
        collect_outputs(tmp_path / "nope", outs("x"), max_total=MiB)


@given(st.text(alphabet="abcXYZ019._-", min_size=1, max_size=20))
def test_a_plain_name_matches_only_itself(name: str) -> None:
    regex = glob_to_regex(name)
    assert regex.match(name)
    assert not regex.match(name + "x") and not regex.match("d/" + name)


@given(st.lists(st.text(alphabet="ab", min_size=1, max_size=3), min_size=1, max_size=4))
def test_double_star_matches_any_depth(parts: list[str]) -> None:
    path = "/".join(parts)
    assert glob_to_regex("**").match(path)
    assert glob_to_regex("**/" + parts[-1]).match(path)
    assert bool(glob_to_regex("*").match(path)) is (len(parts) == 1)
