"""What an attest entry offers, and a blob store that publishes only checked bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from api.distribution.blobs import BlobStore
from api.distribution.catalog import entries_of_attest
from api.distribution.errors import MirrorError
from farm.transactions import make_attest
from tests.support.attest_world import SHA, WHEEL, World
from tests.support.ledger_fixtures import enroll_all
from tests.support.store_fixtures import write_old_layout


def test_an_attest_entry_offers_its_outputs_with_signed_sizes() -> None:
    world = World()
    (entry,) = entries_of_attest(make_attest(world.bundle()), 5)
    assert (entry.sha256, entry.filename, entry.output) == (SHA, WHEEL, WHEEL)
    assert (entry.name, entry.version, entry.arch, entry.size, entry.index) == (
        "demo",
        "1.0",
        "amd64",
        10,
        5,
    )
    assert entries_of_attest(enroll_all(world)[0], 0) == ()


def test_blobs_are_published_only_when_their_digest_and_size_hold(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    data = b"hello world"
    digest = hashlib.sha256(data).hexdigest()
    with store.writer(digest, len(data)) as w:
        w.write(data)
        path = w.commit()
    assert path.read_bytes() == data and store.size_of(digest) == len(data)

    other = hashlib.sha256(b"other").hexdigest()
    with pytest.raises(MirrorError, match="hash to"), store.writer(other, len(data)) as w:
        w.write(data)
        w.commit()
    assert store.size_of(other) is None
    with pytest.raises(MirrorError, match="more than the 3 bytes"), store.writer(other, 3) as w:
        w.write(b"othe")
    assert store.size_of(other) is None
    assert list(store.tmp_dir.iterdir()) == []
    with pytest.raises(MirrorError, match="not a sha256"):
        store.path_for("../../etc/passwd")


def test_a_blob_store_in_the_old_layout_is_read_and_a_damaged_blob_replaced(
    tmp_path: Path,
) -> None:
    digest = write_old_layout(tmp_path, b"mirrored before the shared store")
    (tmp_path / "tmp").mkdir()
    (tmp_path / "tmp" / "interrupted").write_bytes(b"partial")
    store = BlobStore(tmp_path)
    assert list(store.tmp_dir.iterdir()) == []  # a crash's leftovers are dropped
    assert store.size_of(digest) == 32
    assert store.path_for(digest).read_bytes() == b"mirrored before the shared store"

    damaged = write_old_layout(tmp_path, b"x")
    store.path_for(damaged).chmod(0o644)
    store.path_for(damaged).write_bytes(b"y")
    with store.writer(damaged, 1) as w:
        w.write(b"x")
        w.commit()
    assert store.path_for(damaged).read_bytes() == b"x"
