"""The content-addressed store: digest names, atomic dedup, read-only objects."""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builders.store import ContentStore
from farm.errors import OutputError


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    return ContentStore(tmp_path / "store")


def test_put_names_the_file_by_its_digest(store: ContentStore, tmp_path: Path) -> None:
    src = tmp_path / "a.whl"
    src.write_bytes(b"wheel bytes")
    digest = store.put(src)
    assert digest == sha(b"wheel bytes")
    path = store.get(digest)
    assert path == store.root / "sha256" / digest[:2] / digest
    assert path.read_bytes() == b"wheel bytes"
    assert store.has(digest)
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert list((store.root / "tmp").iterdir()) == []


def test_put_is_deduplicated(store: ContentStore, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"same")
    b.write_bytes(b"same")
    first = store.put(a)
    inode = store.get(first).stat().st_ino
    assert store.put(b) == first
    assert store.get(first).stat().st_ino == inode  # not replaced
    assert len(list((store.root / "sha256").rglob("*"))) == 2  # one fan-out dir, one file


def test_expected_digest_is_verified(store: ContentStore, tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_bytes(b"content")
    with pytest.raises(OutputError, match="expected sha256:" + "0" * 64):
        store.put(src, expected="0" * 64)
    assert not store.has(sha(b"content"))
    assert list((store.root / "tmp").iterdir()) == []
    assert store.put(src, expected=sha(b"content")) == sha(b"content")


def test_links_and_special_files_are_refused(store: ContentStore, tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to("/etc/passwd")
    with pytest.raises(OutputError, match="cannot open"):
        store.put(link)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(OutputError, match="not a regular file"):
        store.put(fifo)


def test_missing_and_malformed_digests(store: ContentStore) -> None:
    with pytest.raises(KeyError):
        store.get("a" * 64)
    assert not store.has("a" * 64)
    for bad in ("A" * 64, "a" * 63, "../" + "a" * 61, "sha256:" + "a" * 64):
        with pytest.raises(ValueError, match="not a sha256"):
            store.has(bad)


def test_put_bytes(store: ContentStore) -> None:
    digest = store.put_bytes(b"a build log\n")
    assert store.get(digest).read_bytes() == b"a build log\n"
    assert store.put_bytes(b"a build log\n", expected=digest) == digest


def test_large_file_in_chunks(store: ContentStore, tmp_path: Path) -> None:
    data = os.urandom(3 * 2**20 + 17)
    src = tmp_path / "big"
    src.write_bytes(data)
    assert store.get(store.put(src)).read_bytes() == data
    assert store.put(src) == sha(data)


def test_concurrent_puts_of_the_same_content(store: ContentStore, tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_bytes(b"raced" * 1000)
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(store.put(src))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(results) == {sha(b"raced" * 1000)}
    assert store.get(results[0]).read_bytes() == b"raced" * 1000


@settings(max_examples=30, deadline=None)
@given(st.binary(max_size=4096))
def test_put_bytes_round_trips(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    store = ContentStore(tmp_path_factory.mktemp("s"))
    digest = store.put_bytes(data)
    assert digest == sha(data) and store.get(digest).read_bytes() == data
