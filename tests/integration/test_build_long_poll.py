"""``GET /v1/builds/{id}?since=&wait=`` (a long-poll) and ``farm submit --wait`` on it.

A real coordinator (uvicorn, SQLite, its scheduler on a real Redis); builders are keys
the test enrolls and speaks for over HTTP, as ``farm builder run`` does after a build.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlmodel import Session

from api.coordinator.app import create_app
from api.coordinator.routes.builds import BUILD_RECHECK_S
from farm.cluster import redis_server
from farm.coordinator import service
from farm.coordinator.client import CoordinatorClient
from farm.coordinator.db import make_engine
from farm.coordinator.models import utcnow
from farm.coordinator.settings import CoordinatorSettings
from farm.keys import KeyPair, generate_key, save_key
from tests.integration.conftest import serve
from tests.integration.openapi_checks import assert_one_error_body
from tests.unit.farm.conftest import BASE_RECIPE
from tests.unit.farm.coordinator._world import BAD, GOOD, WHEEL, envelope, recipe, sha

pytestmark = [pytest.mark.redis]


@dataclass
class Coordinator:
    url: str
    token: str
    http: httpx.Client
    operator: CoordinatorClient
    builders: list[tuple[KeyPair, CoordinatorClient]]


@pytest.fixture
def coordinator(tmp_path: Path) -> Iterator[Coordinator]:
    """A coordinator whose scheduler runs on a real Redis, with three enrolled builders."""
    coordinator_key = tmp_path / "coordinator.key"
    save_key(generate_key(), coordinator_key)
    with redis_server(tmp_path / "redis") as redis:
        settings = CoordinatorSettings(
            db_url=f"sqlite:///{tmp_path / 'c.db'}",
            staging_dir=tmp_path / "staging",
            reports_dir=tmp_path / "reports",
            redis_url=redis.url,
            coordinator_key=coordinator_key,
            schedule_interval=60,  # only a wake-up makes the scheduler act in time
        )
        engine = make_engine(settings.db_url)
        app = create_app(settings, engine=engine)
        with Session(engine) as s:
            token = service.create_operator_token(s, utcnow())
        with serve(app, lifespan=True) as url, httpx.Client(base_url=url, timeout=10) as http:
            operator = CoordinatorClient(http, operator_token=token)
            builders = []
            for _ in range(3):
                key = generate_key()
                client = CoordinatorClient(http, key=key)
                client.enroll(operator.new_enrollment_token()["token"], key.keyid[:8], ["amd64"])
                operator.approve(key.keyid, f"site-{key.keyid[:6]}")
                client.heartbeat()
                builders.append((key, client))
            yield Coordinator(url, token, http, operator, builders)
        engine.dispose()


def _create_build(c: Coordinator) -> str:
    """A build of the recipe, once the scheduler has dispatched it to the three builders."""
    (build,) = c.operator.request_build(yaml.safe_dump(BASE_RECIPE))
    deadline = time.monotonic() + 10
    while len(c.operator.build(build["id"])["attempts"]) < 3:  # the scheduler dispatched it
        assert time.monotonic() < deadline, "the scheduler did not dispatch the build"
        time.sleep(0.05)
    return str(build["id"])


def _post_result(builder: tuple[KeyPair, CoordinatorClient], build_id: str, **kw: Any) -> float:
    key, client = builder
    client.upload(GOOD)
    client.post_result(build_id, envelope(key, kw.pop("recipe", recipe()), build_id))
    return time.monotonic()


def test_a_long_poll_answers_as_soon_as_a_result_is_recorded(coordinator: Coordinator) -> None:
    build_id = _create_build(coordinator)
    before, etag = coordinator.operator.build_when_changed(build_id, None, 0)
    assert etag is not None and len(etag) == 32 and before["results"] == []
    posted: list[float] = []

    def builder() -> None:
        time.sleep(0.5)
        posted.append(_post_result(coordinator.builders[0], build_id))

    thread = threading.Thread(target=builder)
    thread.start()
    after, etag2 = coordinator.operator.build_when_changed(build_id, etag, 30)
    answered = time.monotonic()
    thread.join()
    assert [r["status"] for r in after["results"]] == ["accepted"]
    assert etag2 is not None and etag2 != etag
    # Woken by the commit, not by the bound that covers other processes' commits.
    assert answered - posted[0] < BUILD_RECHECK_S / 2


def test_an_unchanged_build_answers_after_the_wait_despite_other_commits(
    coordinator: Coordinator,
) -> None:
    build_id = _create_build(coordinator)
    before, etag = coordinator.operator.build_when_changed(build_id, None, 0)

    def unrelated_commits() -> None:
        for _ in range(3):
            time.sleep(0.3)
            coordinator.builders[1][1].heartbeat()  # a commit that leaves the build as it is

    thread = threading.Thread(target=unrelated_commits)
    thread.start()
    start = time.monotonic()
    after, etag2 = coordinator.operator.build_when_changed(build_id, etag, 1.5)
    waited = time.monotonic() - start
    thread.join()
    assert 1.5 <= waited < 1.5 + BUILD_RECHECK_S
    assert (after, etag2) == (before, etag)
    # A version that is not the build's answers at once, whatever the wait.
    start = time.monotonic()
    _, etag3 = coordinator.operator.build_when_changed(build_id, "0" * 32, 30)
    assert time.monotonic() - start < 1.0 and etag3 == etag


def test_long_poll_parameters_are_validated_and_documented(coordinator: Coordinator) -> None:
    build_id = _create_build(coordinator)
    for params, status, code in (
        ({"since": "not-a-version"}, 422, "invalid_request"),
        ({"since": "0" * 32, "wait": 61}, 422, "invalid_request"),
        ({"since": "0" * 32, "wait": -1}, 422, "invalid_request"),
    ):
        r = coordinator.http.get(f"/v1/builds/{build_id}", params=params)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), params
    r = coordinator.http.get("/v1/builds/nope", params={"since": "0" * 32, "wait": 5})
    assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found")
    start = time.monotonic()
    r = coordinator.http.get(f"/v1/builds/{build_id}", params={"wait": 30})  # no since
    assert r.status_code == 200 and time.monotonic() - start < 1.0
    assert r.headers["etag"].startswith('"') and r.headers["etag"].endswith('"')

    spec = coordinator.http.get("/openapi.json").json()
    op = spec["paths"]["/v1/builds/{build_id}"]["get"]
    assert {p["name"] for p in op["parameters"]} == {"build_id", "wait", "since"}
    assert "ETag" in op["responses"]["200"]["headers"]
    assert op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "BuildPublic"
    )
    assert_one_error_body(spec)


def test_follow_builds_yields_each_change_until_the_verdict(coordinator: Coordinator) -> None:
    build_id = _create_build(coordinator)

    def builders() -> None:
        for builder in coordinator.builders:
            time.sleep(0.3)
            _post_result(builder, build_id)

    thread = threading.Thread(target=builders)
    start = time.monotonic()
    seen = []
    thread.start()
    for (build,) in coordinator.operator.follow_builds([build_id], timeout=60):
        seen.append(build)
    thread.join()
    assert seen[0]["verdict"] is None and seen[-1]["status"] == "verified"
    assert [len(b["results"]) for b in seen] == sorted(len(b["results"]) for b in seen)
    assert len(seen) >= 3  # it saw results arrive, not only the end
    assert time.monotonic() - start < 10


def test_submit_wait_follows_the_build_and_links_its_diffs(
    coordinator: Coordinator, tmp_path: Path
) -> None:
    data = dict(BASE_RECIPE, upstream=[{"output": WHEEL, "sha256": sha(BAD)}])
    recipe_path = tmp_path / "demo.yaml"
    recipe_path.write_text(yaml.safe_dump(data))
    submit = subprocess.Popen(
        [
            sys.executable, "-m", "farm.cli", "submit", str(recipe_path),
            "--coordinator", coordinator.url, "--operator-token", coordinator.token,
            "--wait", "--timeout", "60",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "250"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not (page := coordinator.operator.builds(name="demo"))["items"]:
            assert time.monotonic() < deadline and submit.poll() is None, "no build requested"
            time.sleep(0.1)
        build_id = page["items"][0]["id"]
        while len(coordinator.operator.build(build_id)["attempts"]) < 3:
            assert time.monotonic() < deadline, "the scheduler did not dispatch the build"
            time.sleep(0.05)
        for builder in coordinator.builders:
            _post_result(builder, build_id, recipe=recipe(upstream=BAD))
        out, _ = submit.communicate(timeout=60)
    finally:
        if submit.poll() is None:
            submit.kill()
            submit.wait()
    assert submit.returncode == 0, out
    assert "amd64: verified" in out
    assert out.count(": succeeded") == 3, out  # each builder's progress, as it happened
    link = f"{coordinator.url}/v1/builds/{build_id}/diffs"
    assert f"differs from upstream: {WHEEL} (diffoscope: {link})" in out, out
    assert coordinator.http.get(link).status_code == 200
