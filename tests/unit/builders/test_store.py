"""The builder's store: the shared content store, refusing with OutputError."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from builders.errors import OutputError
from builders.store import ContentStore
from tests.support.store_fixtures import write_old_layout


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


def test_a_store_in_the_old_layout_is_read(tmp_path: Path) -> None:
    digest = write_old_layout(tmp_path, b"an output from before")
    store = ContentStore(tmp_path)
    assert store.has(digest) and store.get(digest).read_bytes() == b"an output from before"
    assert store.put_bytes(b"an output from before", expected=digest) == digest


def test_expected_digest_is_verified(store: ContentStore, tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_bytes(b"content")
    with pytest.raises(OutputError, match="expected sha256:" + "0" * 64):
        store.put(src, expected="0" * 64)
    assert not store.has(sha(b"content"))
    assert list((store.root / "tmp").iterdir()) == []
    assert store.put(src, expected=sha(b"content")) == sha(b"content")
    with pytest.raises(OutputError, match="<bytes>: content is sha256:"):
        store.put_bytes(b"log", expected="0" * 64)


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
