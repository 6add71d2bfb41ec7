"""A validator listens where its settings say, on the genesis ports."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.settings import NodeSettings


def _settings(**kw: object) -> NodeSettings:
    return NodeSettings(dir=Path("/tmp/v0"), genesis=Path("/tmp/g.json"), **kw)  # type: ignore[arg-type]


def test_default_is_the_genesis_address() -> None:
    assert _settings().listen("v0:26656") == ("v0", 26656)


def test_listen_host_keeps_the_genesis_port() -> None:
    assert _settings(listen_host="0.0.0.0").listen("v0:26657") == ("0.0.0.0", 26657)


def test_listen_host_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FARM_LEDGER_LISTEN_HOST", "0.0.0.0")
    assert _settings().listen("10.0.0.5:26656") == ("0.0.0.0", 26656)


def test_peer_timeout_must_outlast_the_status_interval() -> None:
    """Peers send a status frame every status_interval: a peer_timeout not well above it
    would close healthy links (ADR 0033)."""
    assert _settings(peer_timeout=10, status_interval=1).peer_timeout == 10
    with pytest.raises(ValueError, match=r"peer_timeout .* must exceed twice status_interval"):
        _settings(peer_timeout=2, status_interval=1)
