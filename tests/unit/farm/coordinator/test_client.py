"""The coordinator client's URLs and its following of builds (httpx.MockTransport)."""

from __future__ import annotations

import itertools
import time
from typing import Any

import httpx
import pytest

from farm.coordinator import client as client_module
from farm.coordinator.client import CoordinatorClient
from farm.coordinator.errors import NotFoundError


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("http://127.0.0.1:8600", "http://127.0.0.1:8600/v1/builds/b1/diffs"),
        ("http://127.0.0.1:8600/", "http://127.0.0.1:8600/v1/builds/b1/diffs"),
        ("https://farm.example/coordinator", "https://farm.example/coordinator/v1/builds/b1/diffs"),
        (
            "https://farm.example/coordinator/",
            "https://farm.example/coordinator/v1/builds/b1/diffs",
        ),
    ],
)
def test_url_joins_the_base_url_whether_or_not_it_ends_with_a_slash(base: str, url: str) -> None:
    assert CoordinatorClient(base).url("/v1/builds/b1/diffs") == url


def _build(results: int, verdict: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": "b1", "results": [{}] * results, "verdict": verdict}


def test_follow_builds_reads_a_coordinator_without_long_polls_every_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(client_module, "LEGACY_POLL_S", 0.2)
    answers = [_build(0), _build(0), _build(1), _build(1, {"status": "verified"})]
    asked: list[tuple[float, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append((time.monotonic(), str(request.url.query, "ascii")))
        return httpx.Response(200, json=answers[min(len(asked), len(answers)) - 1])  # no ETag

    http = httpx.Client(base_url="http://coordinator", transport=httpx.MockTransport(handler))
    seen = [b["results"] for (b,) in CoordinatorClient(http).follow_builds(["b1"], timeout=30)]
    assert seen == [[], [{}], [{}]]  # each change once; the unchanged answer is not repeated
    assert [q for _, q in asked] == ["", "", "", ""]  # never a long-poll it cannot answer
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(asked)]
    assert all(gap >= 0.2 for gap in gaps), gaps


def test_follow_builds_long_polls_with_the_version_it_was_given() -> None:
    versions = ['"' + "a" * 32 + '"', '"' + "b" * 32 + '"']
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url.query, "ascii"))
        done = len(asked) > 1
        body = _build(1, {"status": "verified"}) if done else _build(0)
        return httpx.Response(200, json=body, headers={"ETag": versions[done]})

    http = httpx.Client(base_url="http://coordinator", transport=httpx.MockTransport(handler))
    builds = list(CoordinatorClient(http).follow_builds(["b1"], timeout=30, wait=7))
    assert [b["verdict"] for (b,) in builds] == [None, {"status": "verified"}]
    assert asked == ["", f"wait=7&since={'a' * 32}"]


def test_follow_builds_raises_the_coordinators_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"error": {"code": "not_found", "message": "no b1"}})

    http = httpx.Client(base_url="http://coordinator", transport=httpx.MockTransport(handler))
    with pytest.raises(NotFoundError, match="no b1"):
        list(CoordinatorClient(http).follow_builds(["b1"], timeout=30))
