"""Ports for local servers come from below the kernel's ephemeral range, once each."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from farm import ports


def test_ports_are_below_the_ephemeral_range(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "ip_local_port_range"
    fake.write_text("20000\t60999\n")
    monkeypatch.setattr(ports, "EPHEMERAL_RANGE_FILE", fake)
    for _ in range(50):
        base = ports.free_port_range(8)
        assert base >= 10_000 and base + 8 <= 20_000
        assert 10_000 <= ports.free_port() < 20_000


def test_no_port_is_handed_out_twice() -> None:
    seen: set[int] = set()
    for _ in range(200):
        base = ports.free_port_range(3)
        got = set(range(base, base + 3))
        assert not got & seen
        seen |= got


def test_the_port_is_free_to_listen_on() -> None:
    port = ports.free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()


def test_an_unreadable_range_falls_back_to_linux_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ports, "EPHEMERAL_RANGE_FILE", tmp_path / "missing")
    assert ports.free_port() < 32768
