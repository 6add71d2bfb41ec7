"""farm.health: which readiness check fails and why, and the /readyz answer."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from farm.errors import ConfigError
from farm.health import (
    Check,
    distribution_checks,
    probe,
    readiness,
    validator_checks,
)
from farm.health_http import OperationsServer


def failed(checks: list[Check]) -> set[str]:
    return {c.name for c in checks if not c.ok}


# ---------------------------------------------------------------- readiness


def test_all_passing_is_200_ready() -> None:
    status, body = readiness([Check("a", True, "fine"), Check("b", True)])
    assert status == 200
    assert body["status"] == "ready"
    assert body["checks"]["a"] == {"ok": True, "detail": "fine"}


def test_a_failed_check_is_503_and_named_with_its_reason() -> None:
    status, body = readiness([Check("db", True), Check("redis", False, "connection refused")])
    assert status == 503
    assert body["status"] == "unready"
    assert body["failed"] == ["redis"]
    assert body["checks"]["redis"] == {"ok": False, "detail": "connection refused"}


def test_no_checks_is_not_ready() -> None:
    status, body = readiness([])
    assert status == 503
    assert body["failed"] == ["checks"]


def test_probe_turns_an_exception_into_a_failed_check() -> None:
    def boom() -> str:
        raise ConnectionRefusedError("port 6379 refused\nsecond line")

    check = probe("redis", boom)
    assert check == Check("redis", False, "ConnectionRefusedError: port 6379 refused")
    assert probe("redis", lambda: "PONG") == Check("redis", True, "PONG")
    assert probe("x", lambda: None) == Check("x", True, "ok")


# ---------------------------------------------------------------- validator

# (n, height, syncing, peer heights, connected) -> checks that fail
VALIDATOR_CASES: list[tuple[int, int, bool, dict[str, int], int, set[str]]] = [
    (4, 10, False, {"v1": 10, "v2": 11}, 3, set()),
    (4, 10, False, {"v1": 10}, 2, set()),  # 2f = 2 peers are enough
    (4, 10, False, {"v1": 10}, 1, {"peers"}),
    (4, 10, False, {}, 0, {"peers"}),
    (4, 10, False, {"v1": 12}, 3, {"caught_up"}),  # two heights behind
    (4, 10, True, {"v1": 11}, 3, {"caught_up"}),  # fetching blocks
    (4, 10, True, {}, 0, {"caught_up", "peers"}),
    (1, 0, False, {}, 0, set()),  # a single validator needs no peer
    (7, 5, False, {"v1": 5}, 3, {"peers"}),  # f = 2: needs 4
    (7, 5, False, {"v1": 5}, 4, set()),
]


@pytest.mark.parametrize(("n", "height", "syncing", "peers", "connected", "fails"), VALIDATOR_CASES)
def test_validator_readiness(
    n: int, height: int, syncing: bool, peers: dict[str, int], connected: int, fails: set[str]
) -> None:
    checks = validator_checks(
        height=height, syncing=syncing, peer_heights=peers, connected=connected, validators=n
    )
    assert failed(checks) == fails
    assert {c.name for c in checks} == {"caught_up", "peers"}
    for c in checks:
        assert c.detail


def test_validator_reason_names_the_numbers() -> None:
    checks = validator_checks(
        height=3, syncing=False, peer_heights={"v2": 9}, connected=1, validators=4
    )
    details = {c.name: c.detail for c in checks}
    assert "height 3" in details["caught_up"] and "9" in details["caught_up"]
    assert "1 peer(s) connected, 2" in details["peers"]


# ---------------------------------------------------------------- distribution


@pytest.mark.parametrize(
    ("followed", "stamp", "now", "max_age", "fails"),
    [
        (True, 1000.0, 1010.0, 60.0, set()),
        (True, 1000.0, 1060.0, 60.0, set()),
        (True, 1000.0, 1061.0, 60.0, {"checkpoint"}),
        (True, 0.0, 1000.0, 60.0, {"checkpoint"}),
        (False, 1000.0, 1010.0, 60.0, {"followed"}),
        (False, 0.0, 1010.0, 60.0, {"followed", "checkpoint"}),
    ],
)
def test_distribution_readiness(
    followed: bool, stamp: float, now: float, max_age: float, fails: set[str]
) -> None:
    checks = distribution_checks(followed=followed, checkpoint_time=stamp, now=now, max_age=max_age)
    assert failed(checks) == fails


def test_stale_checkpoint_reason_gives_its_age_and_the_limit() -> None:
    [_, cp] = distribution_checks(followed=True, checkpoint_time=100, now=400, max_age=60)
    assert cp.detail == "checkpoint 300 s old, at most 60 s allowed"


# ---------------------------------------------------------------- the small server


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:  # loopback only
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_operations_server_answers_the_three_routes() -> None:
    registry = CollectorRegistry()
    Counter("demo_things", "Things.", registry=registry).inc(3)
    state: dict[str, Any] = {"ok": False}
    server = OperationsServer("127.0.0.1:0", lambda: [Check("thing", state["ok"], "why")], registry)
    server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert _get(base + "/healthz") == (200, b'{"status": "ok"}')
        status, body = _get(base + "/readyz")
        assert status == 503
        assert json.loads(body)["failed"] == ["thing"]
        state["ok"] = True
        assert _get(base + "/readyz")[0] == 200
        status, body = _get(base + "/metrics")
        assert status == 200
        families = {f.name: f for f in text_string_to_metric_families(body.decode())}
        assert families["demo_things"].samples[0].value == 3
        assert _get(base + "/nothing")[0] == 404
    finally:
        server.close()


def test_operations_server_check_that_raises_is_503_not_500() -> None:
    def broken() -> list[Check]:
        raise RuntimeError("bug")

    server = OperationsServer("127.0.0.1:0", broken, CollectorRegistry())
    server.start()
    try:
        status, body = _get(f"http://127.0.0.1:{server.port}/readyz")
        assert status == 503
        assert "RuntimeError: bug" in json.loads(body)["checks"]["checks"]["detail"]
    finally:
        server.close()


@pytest.mark.parametrize("address", ["nohost", "host:", ":80", "host:port"])
def test_operations_server_refuses_a_bad_address(address: str) -> None:
    with pytest.raises(ConfigError, match="want HOST:PORT"):
        OperationsServer(address, list, CollectorRegistry())
