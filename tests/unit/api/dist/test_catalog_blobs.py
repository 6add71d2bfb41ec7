"""What an attest entry offers, and a blob store that publishes only checked bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from api.dist.blobs import BlobStore
from api.dist.catalog import entries_of_attest
from api.dist.errors import MirrorError
from ledger.transactions import make_attest
from tests.unit.farm._attest_fixtures import SHA, WHEEL, World
from tests.unit.ledger._ledger_fixtures import enroll_all


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
