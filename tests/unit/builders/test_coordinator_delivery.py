"""A builder's delivery to its coordinator: bounded retries, refusals kept with their reason."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from builders.delivery import CoordinatorLink
from builders.store import ContentStore
from farm.coordinator.client import CoordinatorClient
from farm.keys import KeyPair, generate_key
from farm.result import BuildPredicate, OutputDigest, sign_result

KEY = generate_key()
DATA = b"output bytes"
LOG = b"build log"


def _envelope(key: KeyPair) -> dict[str, object]:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    predicate = BuildPredicate(
        build_id="build-0001",
        recipe_digest="sha256:" + "1" * 64,
        recipe_name="demo",
        recipe_version="1.0",
        image_digest="sha256:" + "2" * 64,
        arch="amd64",
        builder_id=key.keyid,
        started_at=now,
        finished_at=now,
        status="succeeded",
        exit_code=0,
        log_sha256=hashlib.sha256(LOG).hexdigest(),
        outputs=(OutputDigest(name="a.txt", sha256=hashlib.sha256(DATA).hexdigest(), size=12),),
    )
    return sign_result(predicate, key)


def _link(
    handler: Callable[[httpx.Request], httpx.Response], sleeps: list[float]
) -> CoordinatorLink:
    http = httpx.Client(transport=httpx.MockTransport(handler), base_url="http://coordinator")
    client = CoordinatorClient(http, key=KEY)
    return CoordinatorLink(
        "http://coordinator", KEY, attempts=3, sleep=sleeps.append, client=client
    )


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    s = ContentStore(tmp_path / "store")
    s.put_bytes(DATA)
    s.put_bytes(LOG)
    return s


def test_outputs_and_log_are_staged_then_the_result_posted_signed(store: ContentStore) -> None:
    seen: list[tuple[str, str, bytes]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["X-Farm-Builder"] == KEY.keyid
        seen.append((request.method, request.url.path, request.content))
        return httpx.Response(201, json={})

    envelope = _envelope(KEY)
    report = _link(handler, []).deliver(envelope, store)
    assert report.accepted and report.refused is None
    assert [(m, p) for m, p, _ in seen] == [
        ("PUT", f"/v1/staging/sha256/{hashlib.sha256(DATA).hexdigest()}"),
        ("PUT", f"/v1/staging/sha256/{hashlib.sha256(LOG).hexdigest()}"),
        ("POST", "/v1/builds/build-0001/results"),
    ]
    assert json.loads(seen[-1][2]) == envelope  # sent as signed, not re-serialized differently


def test_transient_errors_are_retried_with_backoff_and_bounded(store: ContentStore) -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(503, text="busy")

    sleeps: list[float] = []
    report = _link(handler, sleeps).deliver(_envelope(KEY), store)
    assert not report.accepted and report.error is not None and "503" in report.error
    assert len(calls) == 3 and sleeps == [0.5, 1.0]


def test_a_refusal_is_not_retried_and_keeps_its_reason(
    store: ContentStore, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if request.method == "PUT":
            return httpx.Response(201, json={})
        error = {"code": "result_refused", "message": "builder x was not asked to build y"}
        return httpx.Response(422, json={"error": error})

    report = _link(handler, []).deliver(_envelope(KEY), store)
    assert report.refused == "builder x was not asked to build y"
    assert len(calls) == 3  # two uploads, one post: no retry of a refusal
    assert "refused the result: builder x was not asked" in caplog.text
