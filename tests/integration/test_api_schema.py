"""The coordinator's published OpenAPI against the real server: schemathesis and auth.

A real ``farm serve --ledger`` (its own uvicorn process, SQLite) on four real
``farm ledger run`` validators, with real data in it: three approved builders, a
verified build with their signed results, and an attestation committed to the ledger.

* schemathesis generates valid and invalid requests from ``/openapi.json`` for every
  operation three times: without credentials, as an operator (bearer token) and as an
  enrolled builder (every request signed). No answer may be a server error, every
  answer must match the schema the document declares, every error must have the one
  error shape, and none may carry a secret. The runs are bounded and derandomized
  (hypothesis ``max_examples``, ``derandomize=True``), so a failure replays;
* every write route, enumerated from the app's routes *and* from the OpenAPI document
  (so a new write route is covered the day it is added), refuses a request without
  credentials (none, a made-up token, basic auth, an unenrolled builder's signature)
  with 401/403 in the one error shape;
* no read reveals a secret: operator token, enrollment tokens after the answer that
  issued them, their stored hashes, the webhook secret, or any private key of a
  builder, the coordinator or the operator.
"""

from __future__ import annotations

import base64
import hashlib
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
import requests
import schemathesis
from cryptography.hazmat.primitives import serialization
from fastapi.routing import APIRoute
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import BaseSchema, GenerationMode, Response
from schemathesis import Case as _Case
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import response_schema_conformance

from api.coordinator.app import create_app
from farm.cluster import free_port
from farm.coordinator import service
from farm.coordinator.auth import sign_request
from farm.coordinator.client import CoordinatorClient
from farm.coordinator.db import create_tables, make_engine, session_scope
from farm.coordinator.models import utcnow
from farm.coordinator.settings import CoordinatorSettings
from farm.keys import KeyPair, generate_key, load_key
from farm.operator import Operator
from tests.support.ledger_testnet import LedgerTestnet
from tests.support.operator import approve
from tests.support.served import Serve, wait_for
from tests.unit.farm.coordinator._world import GOOD, envelope, recipe

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
#: The one write that takes no credentials: it spends a one-time enrollment token.
ENROLL = ("POST", "/v1/builders/enroll")
#: The one answer that shows a secret (the token it issues, once).
TOKENS = ("POST", "/v1/operator/enrollment-tokens")
CHECKS = [not_a_server_error, response_schema_conformance]
#: A build that asked the three builders and has no result yet (the builder fuzz aims here).
OPEN_BUILD = "schema-open"
WEBHOOK_SECRET = "schema-test-webhook-secret-0f3a9c"

FUZZ = settings(
    max_examples=10,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def private_forms(key: KeyPair) -> list[str]:
    """Every way a private key could leak: raw hex, raw base64, the PEM body."""
    raw = key.private.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    pem = key.private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    body = "".join(pem.strip().splitlines()[1:-1])
    return [raw.hex(), base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode(), body]


@dataclass
class Coordinator:
    url: str
    http: httpx.Client
    operator_token: str
    builders: list[KeyPair] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)
    """What must never appear in a response (what it is → its text)."""

    def assert_no_secret(self, text: str, where: str) -> None:
        for what, secret in self.secrets.items():
            assert secret not in text, f"{where} reveals {what}"


def _populate(http: httpx.Client, db: str, token: str, farm: Coordinator, signer: Operator) -> None:
    operator = CoordinatorClient(http, operator_token=token)
    keys = [generate_key() for _ in range(3)]
    for i, key in enumerate(keys):
        client = CoordinatorClient(http, key=key)
        issued = operator.new_enrollment_token(note=f"builder {i}")["token"]
        farm.secrets[f"enrollment token {i}"] = issued
        farm.secrets[f"enrollment token {i} hash"] = hashlib.sha256(issued.encode()).hexdigest()
        client.enroll(issued, f"schema{i}.farm.test", ["amd64"])
        approve(operator, key.keyid, f"site-{i}", signer)
        client.heartbeat()
        client.upload(GOOD)
        for n, form in enumerate(private_forms(key)):
            farm.secrets[f"builder {i} private key ({n})"] = form
    farm.builders.extend(keys)
    unused = operator.new_enrollment_token(note="never used")["token"]
    farm.secrets["unused enrollment token"] = unused
    engine = make_engine(db)
    with session_scope(engine) as session:
        for build_id in ("schema-1", OPEN_BUILD):
            ids = [k.keyid for k in keys]
            service.create_build(session, recipe(), "amd64", ids, build_id, utcnow())
    engine.dispose()
    for key in keys:
        CoordinatorClient(http, key=key).post_result(
            "schema-1", envelope(key, recipe(), "schema-1")
        )


@pytest.fixture(scope="module")
def coordinator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Coordinator]:
    root = tmp_path_factory.mktemp("schema")
    net = LedgerTestnet(root / "ledger", 4)
    db = f"sqlite:///{root / 'coordinator.db'}"
    engine = make_engine(db)
    create_tables(engine)
    with session_scope(engine) as session:
        token = service.create_operator_token(session, utcnow(), "schema test")
    engine.dispose()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FARM_")},
        "FARM_COORDINATOR_REPORTS_DIR": str(root / "reports"),
        "FARM_COORDINATOR_LEDGER_INTERVAL": "0.3",
        "FARM_COORDINATOR_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    argv = [
        sys.executable, "-m", "farm.cli", "serve", "--db", db, "--port", str(port),
        "--staging", str(root / "staging"), "--log-level", "warning",
        "--ledger", ",".join(net.url(i) for i in range(net.n)),
        "--coordinator-key", str(net.root / "coordinator.key"),
        "--ledger-chain", net.chain_id, "--genesis", str(net.genesis),
    ]  # fmt: skip
    serve = Serve(argv, env, root / "serve.log", url)
    http = httpx.Client(base_url=url, timeout=30)
    try:
        net.start_all()
        serve.start(http)
        farm = Coordinator(url, http, token)
        farm.secrets["webhook secret"] = WEBHOOK_SECRET
        farm.secrets["operator token"] = token
        farm.secrets["operator token hash"] = hashlib.sha256(token.encode()).hexdigest()
        for who, key in (("coordinator", net.coordinator), ("operator", net.operator)):
            for n, form in enumerate(private_forms(key)):
                farm.secrets[f"{who} private key ({n})"] = form
        signer = Operator(load_key(net.root / "operator.key"), net.chain_id)
        for n, form in enumerate(private_forms(signer.key)):
            farm.secrets[f"operator private key ({n})"] = form
        _populate(http, db, token, farm, signer)

        def attested() -> bool | None:
            return http.get("/v1/attestations").json()["total"] == 1 or None

        wait_for("the verified build's attestation", attested, 60, 0.2)
        yield farm
        log = (root / "serve.log").read_text(errors="replace")
        assert "Traceback" not in log, log[-5000:]
    finally:
        http.close()
        serve.stop()
        net.close()


@pytest.fixture(scope="module")
def api_schema(coordinator: Coordinator) -> BaseSchema:
    return schemathesis.openapi.from_url(coordinator.url + "/openapi.json")


Case = _Case[Any]
Send = Callable[[Case], Response]


def _fuzz(
    schema: BaseSchema,
    check: Callable[[Case, Response], None],
    send: Send,
    path_parameters: Callable[[str], dict[str, str] | None] = lambda _: None,
) -> Counter[tuple[str, int]]:
    """Run every operation's valid and invalid cases; fail listing every operation that broke.

    Returns how often each (operation, status) was seen. (``schema.parametrize()`` is
    not used: the schema comes from a live server, and schemathesis' lazy fixture
    loading, ``schemathesis.pytest.from_fixture``, fails under pytest 9.)
    """
    failures: list[str] = []
    seen: Counter[tuple[str, int]] = Counter()
    results = list(schema.get_all_operations())
    assert all(isinstance(r, Ok) for r in results), [r for r in results if not isinstance(r, Ok)]
    operations = [r.ok() for r in results if isinstance(r, Ok)]
    assert len(operations) >= 20, [op.label for op in operations]
    for operation in operations:
        fixed = path_parameters(operation.path)
        cases = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE, path_parameters=fixed),
            operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=fixed),
        )

        @FUZZ
        @given(case=cases)
        def run(case: Case) -> None:
            response = send(case)
            case.validate_response(response, checks=CHECKS)
            seen[(case.operation.label, response.status_code)] += 1
            if response.status_code >= 400:
                _assert_error_shape(response.json(), case.operation.label)
            check(case, response)

        try:
            run()
        except Exception as exc:  # collect them all: one run shows every broken operation
            failures.append(f"{operation.label}: {type(exc).__name__}: {exc}")
    assert not failures, "\n\n".join(failures)
    return seen


def _assert_error_shape(body: Any, where: str) -> None:
    """Every error has one shape: ``{"error": {"code": ..., "message": ...}}``."""
    assert isinstance(body, dict) and set(body) == {"error"}, (where, body)
    assert set(body["error"]) == {"code", "message"}, (where, body)
    assert all(isinstance(v, str) and v for v in body["error"].values()), (where, body)


def _plain(coordinator: Coordinator, headers: dict[str, str] | None = None) -> Send:
    def send(case: Case) -> Response:
        response: Response = case.call(base_url=coordinator.url, headers=headers)
        return response

    return send


def test_no_server_error_without_credentials(
    api_schema: BaseSchema, coordinator: Coordinator
) -> None:
    def check(case: Case, response: Response) -> None:
        where = f"{case.method} {case.formatted_path}"
        if case.method.upper() in WRITE_METHODS and case.path != ENROLL[1]:
            # Missing credentials (401/403), or a body refused unread: it does not parse
            # (400) or does not validate (422). Never anything done.
            assert response.status_code in (400, 401, 403, 422), (where, response.text)
            if response.status_code == 422 and case.headers:
                assert not case.headers.get("authorization", "").startswith("Bearer "), where
        coordinator.assert_no_secret(response.text, where)

    seen = _fuzz(api_schema, check, _plain(coordinator))
    writes = [(op, status) for (op, status) in seen if op.split()[0] in WRITE_METHODS]
    assert writes and all(s >= 400 for op, s in writes if op != " ".join(ENROLL)), writes


def test_no_server_error_as_operator(api_schema: BaseSchema, coordinator: Coordinator) -> None:
    original = coordinator.secrets.copy()

    def check(case: Case, response: Response) -> None:
        where = f"{case.method} {case.formatted_path}"
        text = response.text
        if (case.method.upper(), case.path) == TOKENS and response.status_code == 201:
            # The one answer that shows a secret: the token it just issued, once.
            issued = response.json()["token"]
            coordinator.secrets[f"enrollment token issued by {where}"] = issued
            text = text.replace(issued, "")
        coordinator.assert_no_secret(text, where)

    auth = {"Authorization": f"Bearer {coordinator.operator_token}"}
    seen = _fuzz(api_schema, check, _plain(coordinator, auth))
    # The token was used: the operator's writes did something.
    assert seen[(" ".join(TOKENS), 201)] > 0, seen
    assert len(coordinator.secrets) > len(original)


def test_no_server_error_as_a_builder(api_schema: BaseSchema, coordinator: Coordinator) -> None:
    """Every request signed by an enrolled, approved builder (what intake code sees)."""
    key = coordinator.builders[0]
    http = requests.Session()

    def send(case: Case) -> Response:
        kwargs = case.as_transport_kwargs(base_url=coordinator.url)
        names = ("method", "url", "headers", "params", "cookies", "json", "data", "files")
        prepared = http.prepare_request(
            requests.Request(**{k: kwargs[k] for k in names if k in kwargs})
        )
        body = prepared.body or b""
        raw = body.encode() if isinstance(body, str) else body
        assert isinstance(raw, bytes)
        path, _, query = (prepared.path_url or "/").partition("?")
        # What the server signs against: the decoded path and the query as sent.
        target = unquote(path) + (f"?{query}" if query else "")
        signed = sign_request(key, case.method.upper(), target, raw, time.time())
        prepared.headers.update(signed)
        return Response.from_any(http.send(prepared, timeout=30))

    def fixed(path: str) -> dict[str, str] | None:
        if "{build_id}" in path:
            return {"build_id": OPEN_BUILD}
        if "{builder_id}" in path:
            return {"builder_id": key.keyid}
        return None

    def check(case: Case, response: Response) -> None:
        coordinator.assert_no_secret(response.text, f"{case.method} {case.formatted_path}")

    seen = _fuzz(api_schema, check, send, fixed)
    # The signature was accepted: heartbeats went through, results were looked at.
    assert seen[("POST /v1/builders/{builder_id}/heartbeat", 200)] > 0, seen
    results = [s for (op, s) in seen if op == "POST /v1/builds/{build_id}/results"]
    assert 422 in results, seen  # refused with a recorded reason, not a crash


def _writes_of_app() -> set[tuple[str, str]]:
    app = create_app(CoordinatorSettings(db_url="sqlite://"))
    return {
        (method, route.path)
        for route in app.routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
        if method in WRITE_METHODS
    }


def _writes_of_document(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method.upper() in WRITE_METHODS
    }


def _fill(path: str) -> str:
    """A concrete URL for a route template (ids of things that may or may not exist)."""
    values = {"builder_id": "a" * 64, "build_id": "schema-1", "digest": "b" * 64}
    return path.format(**{k: values.get(k, "1") for k in _names(path)})


def _names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")]


def _assert_refused(response: httpx.Response, method: str, path: str) -> None:
    assert response.status_code in (401, 403), (method, path, response.status_code, response.text)
    _assert_error_shape(response.json(), f"{method} {path}")


def test_every_write_refuses_a_request_without_credentials(coordinator: Coordinator) -> None:
    document = coordinator.http.get("/openapi.json").json()
    from_routes, from_document = _writes_of_app(), _writes_of_document(document)
    # Every write of the app is published (none hides from this test), and vice versa.
    assert from_routes == from_document
    writes = sorted(from_routes)
    assert len(writes) >= 8, writes
    builder = generate_key()
    for method, path in writes:
        url = _fill(path)
        if (method, path) == ENROLL:
            body = {
                "token": "x" * 32,
                "public_key": builder.public_dict(),
                "hostname": "intruder",
                "arches": ["amd64"],
            }
            r = coordinator.http.request(method, url, json=body)
            _assert_refused(r, method, path)
            assert r.json()["error"]["code"] == "enrollment_refused"
            continue
        attempts = {
            "no credentials": {},
            "a made-up operator token": {"Authorization": "Bearer not-a-real-token-at-all"},
            "a basic-auth header": {"Authorization": "Basic YWRtaW46YWRtaW4="},
            # Signed by a key that was never enrolled.
            "an unenrolled builder": sign_request(builder, method, url, b"{}", time.time()),
        }
        for what, headers in attempts.items():
            r = coordinator.http.request(
                method, url, content=b"{}", headers={**headers, "content-type": "application/json"}
            )
            _assert_refused(r, method, f"{path} with {what}")
        assert r.status_code == 401 and r.headers.get("www-authenticate") == "Bearer"


def test_no_read_reveals_a_secret(coordinator: Coordinator) -> None:
    http = coordinator.http
    build = http.get("/v1/builds/schema-1").json()
    attestation = http.get("/v1/attestations").json()["items"][0]
    builders = http.get("/v1/builders").json()
    reads = [
        "/openapi.json",
        "/",
        "/builds/schema-1",
        "/v1/builds",
        "/v1/builds/schema-1",
        "/v1/builds/schema-1/diffs",
        "/v1/builders",
        "/v1/recipes",
        "/v1/attestations",
        f"/v1/attestations/{attestation['tx_id']}",
        "/v1/revocations",
        "/v1/ledger/checkpoint",
        "/v1/ledger/status",
        *(f"/v1/builders/{b['id']}" for b in builders),
    ]
    assert build["status"] == "verified" and len(builders) == 3
    for path in reads:
        r = http.get(path)
        assert r.status_code == 200, (path, r.text)
        coordinator.assert_no_secret(r.text, path)
    # The operator's lists too (they take the same reads with a token).
    auth = {"Authorization": f"Bearer {coordinator.operator_token}"}
    for path in ("/v1/builders", "/v1/builds"):
        coordinator.assert_no_secret(http.get(path, headers=auth).text, path)
    # A second request for a token's answer does not exist: enrollment tokens have no read.
    document = http.get("/openapi.json").json()
    token_paths = [p for p in document["paths"] if "token" in p]
    assert token_paths == ["/v1/operator/enrollment-tokens"]
    assert set(document["paths"]["/v1/operator/enrollment-tokens"]) == {"post"}
    assert len(coordinator.secrets) >= 20
