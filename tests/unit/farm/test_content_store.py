"""The shared content-addressed store: digest names, atomic dedup, read-only objects,
and the on-disk layout every earlier store was written in."""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from farm.content_store import ContentStore, is_sha256_hex
from farm.errors import ContentError, DigestMismatchError
from tests.support.store_fixtures import write_old_layout


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    return ContentStore(tmp_path / "store")


def test_put_names_the_file_by_its_digest(store: ContentStore, tmp_path: Path) -> None:
    src = tmp_path / "a.whl"
    src.write_bytes(b"wheel bytes")
    digest = store.put_file(src)
    assert digest == sha(b"wheel bytes")
    path = store.get(digest)
    assert path == store.root / "sha256" / digest[:2] / digest
    assert path.read_bytes() == b"wheel bytes"
    assert store.has(digest)
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert list((store.root / "tmp").iterdir()) == []


def test_a_store_in_the_old_layout_is_read(tmp_path: Path) -> None:
    digest = write_old_layout(tmp_path, b"written by an earlier release")
    store = ContentStore(tmp_path)
    assert store.has(digest) and store.size_of(digest) == 29
    assert store.get(digest).read_bytes() == b"written by an earlier release"
    with store.open(digest) as f:
        assert f.read() == b"written by an earlier release"
    assert store.verify(digest) == 29
    assert store.put_bytes(b"written by an earlier release") == digest  # deduplicated
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()) == [
        Path("sha256") / digest[:2] / digest
    ]


def test_put_is_deduplicated(store: ContentStore, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"same")
    b.write_bytes(b"same")
    first = store.put_file(a)
    inode = store.get(first).stat().st_ino
    assert store.put_file(b) == first
    assert store.get(first).stat().st_ino == inode  # not replaced
    assert len(list((store.root / "sha256").rglob("*"))) == 2  # one fan-out dir, one file


def test_expected_digest_is_verified(store: ContentStore, tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_bytes(b"content")
    with pytest.raises(DigestMismatchError, match="expected sha256:" + "0" * 64) as caught:
        store.put_file(src, expected="0" * 64)
    assert (caught.value.expected, caught.value.actual) == ("0" * 64, sha(b"content"))
    assert not store.has(sha(b"content"))
    assert list((store.root / "tmp").iterdir()) == []
    assert store.put_file(src, expected=sha(b"content")) == sha(b"content")
    with pytest.raises(DigestMismatchError, match="<bytes>: content is sha256:"):
        store.put_bytes(b"other", expected=sha(b"content"))
    with pytest.raises(ValueError, match="not a sha256"):
        store.put_bytes(b"other", expected="sha256:" + sha(b"other"))


def test_a_file_that_differs_from_an_already_stored_digest_is_refused(
    store: ContentStore, tmp_path: Path
) -> None:
    digest = store.put_bytes(b"stored")
    src = tmp_path / "f"
    src.write_bytes(b"not that")
    with pytest.raises(DigestMismatchError):
        store.put_file(src, expected=digest)
    assert store.get(digest).read_bytes() == b"stored"


def test_links_and_special_files_are_refused(store: ContentStore, tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to("/etc/passwd")
    with pytest.raises(ContentError, match="cannot open"):
        store.put_file(link)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ContentError, match="not a regular file"):
        store.put_file(fifo)


def test_missing_and_malformed_digests(store: ContentStore) -> None:
    with pytest.raises(KeyError):
        store.get("a" * 64)
    with pytest.raises(KeyError):
        store.open("a" * 64)
    with pytest.raises(KeyError):
        store.verify("a" * 64)
    assert not store.has("a" * 64) and store.size_of("a" * 64) is None
    for bad in ("A" * 64, "a" * 63, "../" + "a" * 61, "sha256:" + "a" * 64, "/" + "a" * 63):
        assert not is_sha256_hex(bad)
        with pytest.raises(ValueError, match="not a sha256"):
            store.has(bad)
        with pytest.raises(ValueError, match="not a sha256"):
            store.path_for(bad)


def test_put_bytes(store: ContentStore) -> None:
    digest = store.put_bytes(b"a build log\n")
    assert store.get(digest).read_bytes() == b"a build log\n"
    assert store.put_bytes(b"a build log\n", expected=digest) == digest


def test_large_file_in_chunks(store: ContentStore, tmp_path: Path) -> None:
    data = os.urandom(3 * 2**20 + 17)
    src = tmp_path / "big"
    src.write_bytes(data)
    assert store.get(store.put_file(src)).read_bytes() == data
    assert store.put_file(src) == sha(data)
    assert store.verify(sha(data)) == len(data)


def test_concurrent_puts_of_the_same_content(store: ContentStore, tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_bytes(b"raced" * 1000)
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(store.put_file(src))) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(results) == {sha(b"raced" * 1000)}
    assert store.get(results[0]).read_bytes() == b"raced" * 1000


def test_a_writer_publishes_only_on_commit(store: ContentStore) -> None:
    with store.new_writer() as w:
        w.write(b"half ")
        assert w.size == 5
    assert list(store.tmp_dir.iterdir()) == [] and not store.has(sha(b"half "))
    with store.new_writer() as w:
        w.write(b"whole")
        path = w.commit(sha(b"whole"))
    assert path == store.path_for(sha(b"whole")) and path.read_bytes() == b"whole"
    assert list(store.tmp_dir.iterdir()) == []


def test_a_damaged_object_is_kept_unless_replaced(store: ContentStore) -> None:
    digest = store.put_bytes(b"good")
    path = store.get(digest)
    path.chmod(0o644)
    path.write_bytes(b"bad!")
    with pytest.raises(DigestMismatchError, match=f"stored sha256:{digest}"):
        store.verify(digest)
    with store.new_writer() as w:
        w.write(b"good")
        w.commit(digest)
    assert path.read_bytes() == b"bad!"  # an object already stored is never replaced...
    with store.new_writer() as w:
        w.write(b"good")
        w.commit(digest, replace=True)
    assert path.read_bytes() == b"good"  # ...unless the caller asks
    assert stat.S_IMODE(path.stat().st_mode) == 0o444 and store.verify(digest) == 4


def test_clear_tmp_drops_partial_files(store: ContentStore) -> None:
    store.clear_tmp()  # no tmp dir yet: nothing to do
    w = store.new_writer()
    w.write(b"interrupted")
    store.clear_tmp()
    assert list(store.tmp_dir.iterdir()) == []
    w.abort()


@settings(max_examples=30, deadline=None)
@given(st.binary(max_size=4096))
def test_put_bytes_round_trips(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    store = ContentStore(tmp_path_factory.mktemp("s"))
    digest = store.put_bytes(data)
    assert digest == sha(data) and store.get(digest).read_bytes() == data
