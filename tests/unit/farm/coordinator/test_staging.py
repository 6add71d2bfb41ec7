"""The coordinator's staging store: the shared content store, refusing with the
coordinator's errors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from farm.coordinator.errors import NotFoundError, StagingError
from farm.coordinator.staging import Staging, check_digest
from tests.support.store_fixtures import write_old_layout


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_an_upload_is_stored_only_under_its_own_digest(tmp_path: Path) -> None:
    staging = Staging(tmp_path)
    assert staging.put(sha(b"wheel"), b"wheel") == 5
    assert staging.path_for(sha(b"wheel")) == tmp_path / "sha256" / sha(b"wheel")[:2] / sha(
        b"wheel"
    )
    assert staging.verify(sha(b"wheel")) == 5 and staging.put(sha(b"wheel"), b"wheel") == 5
    with pytest.raises(StagingError, match=f"have sha256 {sha(b'other')}, not {sha(b'wheel')}"):
        staging.put(sha(b"wheel"), b"other")
    with pytest.raises(StagingError, match=f"have sha256 {sha(b'other')}, not {sha(b'x')}"):
        staging.put(sha(b"x"), b"other")
    assert not staging.has(sha(b"x")) and not staging.has(sha(b"other"))
    assert list((tmp_path / "tmp").iterdir()) == []


def test_bad_digests_and_missing_or_changed_blobs(tmp_path: Path) -> None:
    staging = Staging(tmp_path)
    for bad in ("../" + "a" * 61, "A" * 64, "sha256:" + "a" * 64):
        with pytest.raises(StagingError, match="not a sha256 hex digest"):
            check_digest(bad)
        with pytest.raises(StagingError, match="not a sha256 hex digest"):
            staging.path_for(bad)
        with pytest.raises(StagingError, match="not a sha256 hex digest"):
            staging.put(bad, b"")
    with pytest.raises(NotFoundError, match="was not uploaded to staging"):
        staging.verify("a" * 64)
    staging.put(sha(b"good"), b"good")
    path = staging.path_for(sha(b"good"))
    path.chmod(0o644)
    path.write_bytes(b"evil")
    with pytest.raises(StagingError, match="no longer has that digest"):
        staging.verify(sha(b"good"))


def test_a_staging_area_in_the_old_layout_is_read(tmp_path: Path) -> None:
    digest = write_old_layout(tmp_path, b"uploaded before the shared store")
    staging = Staging(tmp_path)
    assert staging.has(digest) and staging.verify(digest) == 32
    assert staging.path_for(digest).read_bytes() == b"uploaded before the shared store"
    assert staging.put(digest, b"uploaded before the shared store") == 32
