"""The coordinator's REST API over HTTP (FastAPI TestClient): auth, intake, refusals."""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel

from api.coordinator.app import create_app
from api.errors import ErrorBody
from farm.coordinator import service
from farm.coordinator.auth import sign_request
from farm.coordinator.client import CoordinatorClient
from farm.coordinator.db import make_engine
from farm.coordinator.errors import (
    AuthenticationError,
    EnrollmentError,
    NotFoundError,
    PermissionDeniedError,
    ResultRefusedError,
    StagingError,
)
from farm.coordinator.models import utcnow
from farm.coordinator.settings import CoordinatorSettings
from farm.keys import KeyPair, generate_key
from farm.transactions import make_revoke
from tests.integration.conftest import serve
from tests.integration.openapi_checks import assert_one_error_body
from tests.support.postgres import have_postgres, postgres_server
from tests.unit.farm.coordinator._world import BAD, GOOD, envelope, recipe, sha


@dataclass
class Farm:
    app: FastAPI
    http: httpx.Client
    engine: Engine
    operator: CoordinatorClient

    def builder(self, key: KeyPair) -> CoordinatorClient:
        return CoordinatorClient(self.http, key=key)

    def enrolled(self, key: KeyPair, *, approve: bool = True) -> CoordinatorClient:
        client = self.builder(key)
        token = self.operator.new_enrollment_token()["token"]
        client.enroll(token, f"host-{key.keyid[:6]}", ["amd64"])
        if approve:
            self.operator.approve(key.keyid, f"site-{key.keyid[:6]}")
        return client

    def create_build(self, build_id: str, keys: list[KeyPair]) -> None:
        with Session(self.engine) as s:
            service.create_build(s, recipe(), "amd64", [k.keyid for k in keys], build_id, utcnow())


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """One throwaway PostgreSQL server for this module."""
    assert have_postgres(), "initdb/pg_ctl not installed (deploy/setup.sh installs postgresql)"
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'c.db'}"
    url: str = request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    SQLModel.metadata.drop_all(engine)
    engine.dispose()
    return url


@pytest.fixture
def farm(tmp_path: Path, db_url: str) -> Iterator[Farm]:
    settings = CoordinatorSettings(
        db_url=db_url,
        staging_dir=tmp_path / "staging",
        reports_dir=tmp_path / "reports",
    )
    engine = make_engine(settings.db_url)
    app = create_app(settings, engine=engine)
    with Session(engine) as s:
        secret = service.create_operator_token(s, utcnow())
    with serve(app, lifespan=True) as base_url, httpx.Client(base_url=base_url, timeout=10) as http:
        yield Farm(app, http, engine, CoordinatorClient(http, operator_token=secret))
    engine.dispose()


def test_enroll_approve_heartbeat_and_read(farm: Farm) -> None:
    key = generate_key()
    client = farm.builder(key)
    token = farm.operator.new_enrollment_token(ttl_seconds=600, note="rack 4")["token"]
    pending = client.enroll(token, "b1.example", ["amd64"])
    assert pending["id"] == key.keyid
    assert pending["approved"] is False
    assert client.heartbeat()["last_seen"] is not None
    with pytest.raises(PermissionDeniedError, match="not approved"):
        client.upload(GOOD)
    farm.operator.approve(key.keyid, "site-a")
    assert client.upload(GOOD) == sha(GOOD)
    (listed,) = farm.operator.builders()
    assert listed["approved"] is True and listed["domain"] == "site-a"
    text = farm.http.get("/v1/builders").text
    assert token not in text and "sha256" not in text.replace("sha256_", "")
    with pytest.raises(EnrollmentError, match="already used"):
        farm.builder(generate_key()).enroll(token, "b2", ["amd64"])


def test_a_retired_builder_is_no_longer_scheduled_and_its_uploads_are_refused(
    farm: Farm,
) -> None:
    keys = [generate_key() for _ in range(4)]
    clients = [farm.enrolled(k) for k in keys]
    for c in clients:
        c.heartbeat()
    retired = farm.operator.retire(keys[0].keyid, "host decommissioned")
    assert retired["approved"] is False and retired["approved_at"] is None
    with pytest.raises(PermissionDeniedError, match="not approved"):
        clients[0].upload(GOOD)
    with Session(farm.engine) as s:
        healthy = {b.id for b in service.healthy_builders(s, "amd64", utcnow())}
    assert healthy == {k.keyid for k in keys[1:]}
    with pytest.raises(NotFoundError):
        farm.operator.retire(generate_key().keyid)


WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def test_auth_is_enforced_on_every_write(farm: Farm) -> None:
    writes = [
        (method, route.path)
        for route in farm.app.routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
        if method in WRITE_METHODS
    ]
    assert len(writes) >= 6
    for method, path in writes:
        url = path.format(builder_id="a" * 64, build_id="build-x", digest=sha(GOOD))
        response = farm.http.request(method, url, json={})
        if path == "/v1/builders/enroll":
            # Spends a token: a missing or unknown one is refused.
            assert response.status_code in (403, 422), (method, path)
            response = farm.http.post(
                url,
                json={
                    "token": "x" * 32,
                    "public_key": generate_key().public_dict(),
                    "hostname": "h",
                    "arches": ["amd64"],
                },
            )
            assert response.status_code == 403
            assert response.json()["error"]["code"] == "enrollment_refused"
            continue
        assert response.status_code == 401, (method, path, response.text)
        assert set(response.json()) == {"error"}
        assert set(response.json()["error"]) == {"code", "message"}
    bad_operator = CoordinatorClient(farm.http, operator_token="not-a-token")
    with pytest.raises(AuthenticationError, match="not valid"):
        bad_operator.new_enrollment_token()


def test_signature_covers_body_time_and_is_used_once(farm: Farm) -> None:
    key = generate_key()
    farm.enrolled(key)
    path = f"/v1/staging/sha256/{sha(GOOD)}"
    headers = sign_request(key, "PUT", path, GOOD, time.time())
    # A different body than the one signed.
    r = farm.http.put(path, content=BAD, headers=headers)
    assert r.status_code == 401
    assert "does not verify" in r.json()["error"]["message"]
    ok = farm.http.put(path, content=GOOD, headers=headers)
    assert ok.status_code == 201
    replay = farm.http.put(path, content=GOOD, headers=headers)
    assert replay.status_code == 401
    assert "replay" in replay.json()["error"]["message"]
    stale = sign_request(key, "PUT", path, GOOD, time.time() - 3600)
    r = farm.http.put(path, content=GOOD, headers=stale)
    assert r.status_code == 401
    assert "window" in r.json()["error"]["message"]
    other = generate_key()
    farm.enrolled(other)
    r = farm.http.post(
        f"/v1/builders/{key.keyid}/heartbeat",
        headers=sign_request(
            other, "POST", f"/v1/builders/{key.keyid}/heartbeat", b"", time.time()
        ),
    )
    assert r.status_code == 403


def test_unenrolled_builder_is_refused(farm: Farm) -> None:
    stranger = farm.builder(generate_key())
    with pytest.raises(AuthenticationError, match="not enrolled"):
        stranger.upload(GOOD)
    with pytest.raises(AuthenticationError, match="not enrolled"):
        stranger.heartbeat()


def test_upload_whose_bytes_do_not_match_the_url_digest(farm: Farm) -> None:
    key = generate_key()
    farm.enrolled(key)
    path = f"/v1/staging/sha256/{sha(GOOD)}"
    r = farm.http.put(path, content=BAD, headers=sign_request(key, "PUT", path, BAD, time.time()))
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "staging_refused"


def test_three_builders_verified_over_http(farm: Farm) -> None:
    keys = [generate_key() for _ in range(3)]
    clients = [farm.enrolled(k) for k in keys]
    farm.create_build("build-http-1", keys)
    for key, client in zip(keys, clients, strict=True):
        client.heartbeat()
        client.upload(GOOD)
        accepted = client.post_result("build-http-1", envelope(key, recipe(), "build-http-1"))
        assert accepted["status"] == "accepted"
    build = farm.operator.build("build-http-1")
    assert build["status"] == "verified"
    assert build["verdict"]["agreed"] == sorted(k.keyid for k in keys)


def test_attacks_are_refused_with_a_recorded_reason(farm: Farm) -> None:
    keys = [generate_key() for _ in range(3)]
    clients = [farm.enrolled(k) for k in keys]
    farm.create_build("build-a-0001", keys)
    farm.create_build("build-b-0001", keys)
    # Builder 0 signs the digest of GOOD but uploaded BAD.
    clients[0].upload(BAD)
    with pytest.raises(ResultRefusedError, match="not uploaded to staging"):
        clients[0].post_result(
            "build-a-0001", envelope(keys[0], recipe(), "build-a-0001", BAD, claimed=GOOD)
        )
    # Builder 1's honest result for build a, replayed against build b.
    clients[1].upload(GOOD)
    honest = envelope(keys[1], recipe(), "build-a-0001")
    clients[1].post_result("build-a-0001", honest)
    with pytest.raises(ResultRefusedError, match="another build id"):
        clients[1].post_result("build-b-0001", honest)
    # Builder 2 relays a result signed by an unenrolled key.
    stranger = generate_key()
    with pytest.raises(ResultRefusedError, match="not known"):
        clients[2].post_result("build-a-0001", envelope(stranger, recipe(), "build-a-0001"))
    a = farm.operator.build("build-a-0001")
    reasons = [(r["builder_id"], r["status"], r["reason"]) for r in a["results"]]
    assert reasons[0][1:] == (
        "refused",
        f"output demo-1.0.0-py3-none-any.whl sha256:{sha(GOOD)} was not uploaded to staging",
    )
    assert reasons[1][1:] == ("accepted", None)
    assert reasons[2][1] == "refused"
    b = farm.operator.build("build-b-0001")
    assert [r["status"] for r in b["results"]] == ["refused"]
    assert "another build id" in b["results"][0]["reason"]
    assert b["results"][0]["envelope"] == honest


def wheel_bytes(text: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("demo/__init__.py", f"BUILT = {text!r}\n")
    return buf.getvalue()


def test_disputed_build_gets_diffoscope_reports(farm: Farm) -> None:
    keys = [generate_key() for _ in range(3)]
    clients = [farm.enrolled(k) for k in keys]
    farm.create_build("build-dispute-1", keys)
    same, odd = wheel_bytes("the same"), wheel_bytes("host three differs")
    for key, client, data in zip(keys, clients, (same, same, odd), strict=True):
        client.upload(data)
        client.post_result("build-dispute-1", envelope(key, recipe(), "build-dispute-1", data))
    assert farm.operator.build("build-dispute-1")["status"] == "disputed"
    deadline = time.monotonic() + 60
    while not (diffs := farm.http.get("/v1/builds/build-dispute-1/diffs").json()):
        assert time.monotonic() < deadline, "no diffoscope report appeared"
        time.sleep(0.2)
    (report,) = diffs
    assert report["status"] == "done", report["error"]
    assert (report["sha256_a"], report["sha256_b"]) == (sha(same), sha(odd))
    html = farm.http.get(f"/v1/diffs/{report['id']}.html")
    assert html.status_code == 200
    assert "sandbox" in html.headers["content-security-policy"]
    assert "demo/__init__.py" in html.text
    js = farm.http.get(f"/v1/diffs/{report['id']}.json").json()
    assert "host three differs" in json.dumps(js)
    assert "html_path" not in report


def test_errors_have_one_shape(farm: Farm) -> None:
    for url in ("/v1/builds/nope", "/v1/builders/nope", "/no/such/route", "/v1/diffs/7.html"):
        r = farm.http.get(url)
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "not_found"
    huge = farm.http.get("/v1/diffs/99999999999999.json")
    assert huge.status_code == 422
    assert huge.json()["error"]["code"] == "invalid_request"
    r = farm.http.post(
        "/v1/builders/enroll", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_request"
    with pytest.raises(StagingError):
        key = generate_key()
        farm.enrolled(key)
        CoordinatorClient(farm.http, key=key)._send(
            "PUT", "/v1/staging/sha256/zz", b"x", signed=True
        )


def test_openapi_is_published(farm: Farm) -> None:
    spec = farm.http.get("/openapi.json").json()
    assert "/v1/builds/{build_id}/results" in spec["paths"]
    assert_one_error_body(spec)
    for r in (
        farm.http.get("/v1/attestations", params={"limit": 0}),
        farm.http.get("/v1/builds/nope"),
        farm.http.post("/v1/revocations", json={}),
    ):
        assert r.status_code >= 400 and ErrorBody.model_validate(r.json()).error.code


def test_revocations_and_ledger_reads_without_a_ledger(farm: Farm) -> None:
    signed = make_revoke(generate_key(), sha(GOOD), "compromised", chain="farm-x")
    body = {"tx": signed.decode()}
    assert farm.http.post("/v1/revocations", json=body).status_code == 401
    operator = {"Authorization": f"Bearer {farm.operator.operator_token}"}
    r = farm.http.post("/v1/revocations", json=body, headers=operator)
    assert r.status_code == 409 and "has no ledger" in r.json()["error"]["message"]
    # The body is the operator's signed transaction, not a digest for the coordinator to sign.
    legacy = {"sha256": sha(GOOD), "reason": "compromised"}
    r = farm.http.post("/v1/revocations", json=legacy, headers=operator)
    assert r.status_code == 422 and r.json()["error"]["message"].startswith("body.")
    page = farm.http.get("/v1/revocations", params={"sha256": sha(GOOD)}).json()
    assert page == {"items": [], "total": 0, "next_offset": None}
    assert farm.http.get("/v1/revocations/7").status_code == 404
    assert farm.http.get("/v1/revocations", params={"sha256": "nope"}).status_code == 422
    for path in ("/v1/ledger/status", "/v1/ledger/checkpoint"):
        r = farm.http.get(path)
        assert r.status_code == 409 and set(r.json()) == {"error"}
    r = farm.http.get("/v1/ledger/proofs/inclusion", params={"index": 3, "size": 3})
    assert r.status_code == 400 and "index < size" in r.json()["error"]["message"]
    assert farm.http.get("/v1/attestations", params={"revoked": "true"}).json()["total"] == 0
