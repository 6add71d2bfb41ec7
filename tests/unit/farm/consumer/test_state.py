"""The trust memory only grows, refuses to be silently damaged, and files are atomic."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from farm.consumer.cli import _early_hash
from farm.consumer.flow import hash_file
from farm.consumer.state import (
    default_state_dir,
    evidence_path,
    load_evidence,
    load_memory,
    remember,
    write_atomic,
)
from farm.consumer.trust import TrustMemory
from farm.errors import ConfigError

G = "a" * 64


def memory(size: int, time: int | None = None, root: str = "b" * 64) -> TrustMemory:
    return TrustMemory(genesis_hash=G, tree_size=size, root_hash=root, checkpoint_time=time)


def test_memory_only_grows(tmp_path: Path) -> None:
    assert load_memory(tmp_path, G) is None
    assert remember(tmp_path, memory(5, 100)) == memory(5, 100)
    assert remember(tmp_path, memory(3, 200)) == memory(5, 100)
    assert remember(tmp_path, memory(5, 50)) == memory(5, 100)
    assert remember(tmp_path, memory(5, 150)) == memory(5, 150)
    assert remember(tmp_path, memory(9, 10)) == memory(9, 10)
    assert load_memory(tmp_path, G) == memory(9, 10)
    assert (tmp_path / "ledgers" / f"{G}.json").stat().st_mode & 0o777 == 0o600


def test_damaged_memory_is_an_error_not_a_blank(tmp_path: Path) -> None:
    remember(tmp_path, memory(5))
    (tmp_path / "ledgers" / f"{G}.json").write_text('{"tree_size": "x"}')
    with pytest.raises(ConfigError, match="trust memory is damaged"):
        load_memory(tmp_path, G)


def test_memory_of_another_ledger_is_refused(tmp_path: Path) -> None:
    remember(tmp_path, memory(5))
    (tmp_path / "ledgers" / f"{G}.json").rename(tmp_path / "ledgers" / f"{'c' * 64}.json")
    with pytest.raises(ConfigError, match="another ledger"):
        load_memory(tmp_path, "c" * 64)


def test_state_dir_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FARM_STATE_DIR", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert default_state_dir() == tmp_path / "xdg" / "farm"
    monkeypatch.setenv("FARM_STATE_DIR", str(tmp_path / "explicit"))
    assert default_state_dir() == tmp_path / "explicit"


def test_write_atomic_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "d" / "file"
    write_atomic(target, b"one")
    write_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["file"]


def test_evidence_file_that_is_not_evidence_is_refused(tmp_path: Path) -> None:
    wheel = tmp_path / "x.whl"
    assert evidence_path(wheel) == tmp_path / "x.whl.farm-evidence.json"
    evidence_path(wheel).write_text("{}")
    with pytest.raises(ConfigError, match="not farm evidence"):
        load_evidence(evidence_path(wheel))


def test_hash_file_and_early_hash_agree_with_hashlib(tmp_path: Path) -> None:
    data = bytes(range(256)) * 40000  # larger than one read buffer
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    want = (hashlib.sha256(data).hexdigest(), len(data))
    assert hash_file(path) == want
    early = _early_hash(["farm", "verify", "--genesis", str(path), str(path), "--offline"])
    assert early is not None and early.path == path
    assert early.get(path) == want
    assert early.get(tmp_path / "other") is None
    assert _early_hash(["farm", "pull", str(path)]) is None
    assert _early_hash(["farm", "verify", str(tmp_path / "missing")]) is None
