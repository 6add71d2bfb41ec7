"""Build requests and the paginated reads of the coordinator's API (real HTTP, SQLite)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from sqlmodel import Session

from api.coordinator.app import create_app
from farm.coordinator import service
from farm.coordinator.db import make_engine
from farm.coordinator.models import utcnow
from farm.coordinator.settings import CoordinatorSettings
from tests.integration.conftest import serve
from tests.unit.farm.conftest import BASE_RECIPE


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[httpx.Client, dict[str, str]]]:
    settings = CoordinatorSettings(
        db_url=f"sqlite:///{tmp_path / 'c.db'}",
        staging_dir=tmp_path / "staging",
        reports_dir=tmp_path / "reports",
    )
    engine = make_engine(settings.db_url)
    app = create_app(settings, engine=engine)
    with Session(engine) as s:
        secret = service.create_operator_token(s, utcnow())
    with serve(app) as url, httpx.Client(base_url=url, timeout=10) as http:
        yield http, {"Authorization": f"Bearer {secret}"}
    engine.dispose()


def _recipe(version: str) -> str:
    return yaml.safe_dump({**BASE_RECIPE, "version": version})


def test_operator_requests_builds_as_yaml_or_json(
    api: tuple[httpx.Client, dict[str, str]],
) -> None:
    http, auth = api
    created = http.post("/v1/builds", json={"recipe": _recipe("1.0.0")}, headers=auth)
    assert created.status_code == 201, created.text
    (build,) = created.json()
    assert build["status"] == "pending" and build["origin"] == "api"
    assert build["attempts"] == [] and build["results"] == []
    as_json = http.post(
        "/v1/builds", json={"recipe": {**BASE_RECIPE, "version": "1.0.1"}}, headers=auth
    )
    assert as_json.status_code == 201
    bad = http.post("/v1/builds", json={"recipe": "name: x\n"}, headers=auth)
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "bad_recipe"
    unauthenticated = http.post("/v1/builds", json={"recipe": _recipe("1.0.2")})
    assert unauthenticated.status_code == 401
    arch = http.post(
        "/v1/builds", json={"recipe": _recipe("1.0.3"), "arches": ["s390x"]}, headers=auth
    )
    assert arch.status_code == 422 and "not built for s390x" in arch.json()["error"]["message"]


def test_builds_are_paged_and_filtered(api: tuple[httpx.Client, dict[str, str]]) -> None:
    http, auth = api
    ids = []
    for v in ("1.0.0", "1.0.1", "1.0.2"):
        ids += [
            b["id"]
            for b in http.post("/v1/builds", json={"recipe": _recipe(v)}, headers=auth).json()
        ]
    first = http.get("/v1/builds", params={"limit": 2}).json()
    assert first["total"] == 3 and len(first["items"]) == 2 and first["next_offset"] == 2
    rest = http.get("/v1/builds", params={"limit": 2, "offset": 2}).json()
    assert len(rest["items"]) == 1 and rest["next_offset"] is None
    seen = [b["id"] for b in first["items"] + rest["items"]]
    assert sorted(seen) == sorted(ids)
    assert http.get("/v1/builds", params={"name": "demo", "status": "pending"}).json()["total"] == 3
    assert http.get("/v1/builds", params={"name": "other"}).json()["total"] == 0
    assert http.get("/v1/builds", params={"verdict": "verified"}).json()["total"] == 0
    bad = http.get("/v1/builds", params={"verdict": "maybe"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"
    assert http.get("/v1/builds", params={"limit": 0}).status_code == 422


def test_recipes_and_push_hook_without_a_followed_repository(
    api: tuple[httpx.Client, dict[str, str]],
) -> None:
    http, auth = api
    assert http.get("/v1/recipes").json() == []
    hook = http.post("/v1/hooks/push", content=json.dumps({}), headers=auth)
    assert hook.status_code == 409 and "follows no recipe repository" in hook.text
    forged = http.post("/v1/hooks/push", headers={"X-Hub-Signature-256": "sha256=" + "0" * 64})
    assert forged.status_code == 401
