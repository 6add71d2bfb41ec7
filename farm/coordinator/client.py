"""A client of the coordinator's API, for builders and operators (httpx).

Builder requests are signed with the builder's key (:func:`farm.coordinator.auth.sign_request`)
over the exact body bytes sent. Error responses come back as the coordinator's own
errors (by their ``code``), so callers catch :class:`farm.errors.FarmError` as usual.
"""

from __future__ import annotations

import hashlib
import json
import queue
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import httpx

from farm.coordinator.auth import sign_request
from farm.coordinator.errors import (
    AuthenticationError,
    BadRequestError,
    ConflictError,
    CoordinatorError,
    EnrollmentError,
    LedgerUnavailableError,
    NotFoundError,
    PermissionDeniedError,
    ResultRefusedError,
    StagingError,
)
from farm.keys import KeyPair

__all__ = ["LEGACY_POLL_S", "LONG_POLL_S", "CoordinatorClient"]

#: Seconds one long-poll of a build asks the coordinator to wait for a change. Short
#: enough that a coordinator stopping gracefully is not held up long by its clients.
LONG_POLL_S = 10.0
#: Seconds between reads of a build from a coordinator without long-polls.
LEGACY_POLL_S = 1.0

_BY_CODE: dict[str, type[CoordinatorError]] = {
    "not_found": NotFoundError,
    "unauthenticated": AuthenticationError,
    "forbidden": PermissionDeniedError,
    "enrollment_refused": EnrollmentError,
    "conflict": ConflictError,
    "staging_refused": StagingError,
    "result_refused": ResultRefusedError,
    "bad_request": BadRequestError,
    "ledger_unavailable": LedgerUnavailableError,
}


class CoordinatorClient:
    """Talks to one coordinator; ``http`` may be any ``httpx.Client`` (tests pass theirs)."""

    def __init__(
        self,
        http: httpx.Client | str,
        *,
        key: KeyPair | None = None,
        operator_token: str | None = None,
        clock: Callable[[], float] = time.time,
        timeout: float = 30.0,
    ) -> None:
        self.http = (
            http if isinstance(http, httpx.Client) else httpx.Client(base_url=http, timeout=timeout)
        )
        self.key = key
        self.operator_token = operator_token
        self.clock = clock

    def url(self, path: str) -> str:
        """The absolute URL of ``path`` on this coordinator, as this client requests it
        (whether or not its base URL ends with a slash, or has a path of its own)."""
        return str(self.http.build_request("GET", path).url)

    def _send(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        *,
        signed: bool = False,
        operator: bool = False,
        content_type: str = "application/json",
    ) -> Any:
        return self._request(
            method, path, body, signed=signed, operator=operator, content_type=content_type
        ).json()

    def _request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        *,
        signed: bool = False,
        operator: bool = False,
        content_type: str = "application/json",
        longer: float = 0.0,
    ) -> httpx.Response:
        """Send one request; a success response, or the coordinator's error raised.
        ``longer`` extends the read timeout (a long-poll)."""
        headers = {"Content-Type": content_type}
        if signed:
            if self.key is None:
                raise AuthenticationError("this client has no builder key to sign with")
            headers.update(sign_request(self.key, method, path, body, self.clock()))
        if operator:
            if not self.operator_token:
                raise AuthenticationError("this client has no operator token")
            headers["Authorization"] = f"Bearer {self.operator_token}"
        timeout = self.http.timeout
        if longer and timeout.read is not None:
            timeout = httpx.Timeout(
                connect=timeout.connect,
                read=timeout.read + longer,
                write=timeout.write,
                pool=timeout.pool,
            )
        try:
            response = self.http.request(
                method, path, content=body, headers=headers, timeout=timeout
            )
        except httpx.HTTPError as exc:
            raise CoordinatorError(f"coordinator unreachable: {exc}") from None
        if response.is_success:
            return response
        try:
            error = response.json()["error"]
            code, message = str(error["code"]), str(error["message"])
        except (ValueError, KeyError, TypeError):
            code, message = "http_error", f"HTTP {response.status_code}: {response.text[:200]}"
        raise _BY_CODE.get(code, CoordinatorError)(message)

    @staticmethod
    def _json(value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":")).encode()

    # -- builder -------------------------------------------------------------------------

    def enroll(self, token: str, hostname: str, arches: list[str]) -> dict[str, Any]:
        """Enroll this client's key; returns the builder as the coordinator shows it."""
        if self.key is None:
            raise AuthenticationError("this client has no builder key to enroll")
        body = {
            "token": token,
            "public_key": self.key.public_dict(),
            "hostname": hostname,
            "arches": arches,
        }
        result: dict[str, Any] = self._send("POST", "/v1/builders/enroll", self._json(body))
        return result

    def heartbeat(self) -> dict[str, Any]:
        """Tell the coordinator this builder is alive."""
        assert self.key is not None
        path = f"/v1/builders/{self.key.keyid}/heartbeat"
        result: dict[str, Any] = self._send("POST", path, signed=True)
        return result

    def upload(self, data: bytes) -> str:
        """Stage ``data``; return its sha256 hex."""
        digest = hashlib.sha256(data).hexdigest()
        self._send(
            "PUT",
            f"/v1/staging/sha256/{digest}",
            data,
            signed=True,
            content_type="application/octet-stream",
        )
        return digest

    def post_result(self, build_id: str, envelope: dict[str, Any]) -> dict[str, Any]:
        """Send a result envelope for ``build_id``."""
        path = f"/v1/builds/{build_id}/results"
        result: dict[str, Any] = self._send("POST", path, self._json(envelope), signed=True)
        return result

    # -- operator ------------------------------------------------------------------------

    def new_enrollment_token(self, ttl_seconds: int = 3600, note: str = "") -> dict[str, Any]:
        """Issue a one-time enrollment token (operator)."""
        body = self._json({"ttl_seconds": ttl_seconds, "note": note})
        result: dict[str, Any] = self._send(
            "POST", "/v1/operator/enrollment-tokens", body, operator=True
        )
        return result

    def approve(
        self, builder_id: str, domain: str, enroll_tx: bytes | None = None
    ) -> dict[str, Any]:
        """Approve an enrolled builder in independence ``domain`` (operator); with a
        ledger, ``enroll_tx`` is the enroll transaction the operator signed
        (:mod:`farm.operator`), which the coordinator relays."""
        body: dict[str, Any] = {"domain": domain}
        if enroll_tx is not None:
            body["enroll_tx"] = enroll_tx.decode("utf-8")
        result: dict[str, Any] = self._send(
            "POST", f"/v1/builders/{builder_id}/approve", self._json(body), operator=True
        )
        return result

    def retire(
        self,
        builder_id: str,
        reason: str = "retired by the operator",
        retire_tx: bytes | None = None,
    ) -> dict[str, Any]:
        """Retire a builder (operator): no longer scheduled; ``retire_tx``, the retire
        transaction the operator signed, retires it on the ledger too."""
        body: dict[str, Any] = {"reason": reason}
        if retire_tx is not None:
            body["retire_tx"] = retire_tx.decode("utf-8")
        result: dict[str, Any] = self._send(
            "POST", f"/v1/builders/{builder_id}/retire", self._json(body), operator=True
        )
        return result

    def request_build(
        self, recipe: str | dict[str, Any], arches: list[str] | None = None
    ) -> list[dict[str, Any]]:
        """Ask for a build of ``recipe`` (YAML text or canonical JSON); one per arch (operator)."""
        body = self._json({"recipe": recipe, "arches": arches})
        result: list[dict[str, Any]] = self._send("POST", "/v1/builds", body, operator=True)
        return result

    def revoke(self, revoke_tx: bytes) -> dict[str, Any]:
        """Relay the revoke transaction the operator signed (operator); answers
        ``pending``."""
        body = self._json({"tx": revoke_tx.decode("utf-8")})
        result: dict[str, Any] = self._send("POST", "/v1/revocations", body, operator=True)
        return result

    # -- reads ---------------------------------------------------------------------------

    def revocation(self, revocation_id: int) -> dict[str, Any]:
        """One revocation by id."""
        result: dict[str, Any] = self._send("GET", f"/v1/revocations/{revocation_id}")
        return result

    def attestations(
        self,
        *,
        name: str | None = None,
        version: str | None = None,
        arch: str | None = None,
        sha256: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> dict[str, Any]:
        """One page of committed attestations: ``{"items", "total", "next_offset"}``."""
        query = self._query(
            {
                "name": name,
                "version": version,
                "arch": arch,
                "sha256": sha256,
                "limit": limit,
                "offset": offset,
            }
        )
        result: dict[str, Any] = self._send("GET", f"/v1/attestations{query}")
        return result

    @staticmethod
    def _query(params: dict[str, Any]) -> str:
        kept = {k: v for k, v in params.items() if v is not None}
        return f"?{urllib.parse.urlencode(kept)}" if kept else ""

    def builds(
        self,
        *,
        status: str | None = None,
        name: str | None = None,
        verdict: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> dict[str, Any]:
        """One page of builds, newest first: ``{"items", "total", "next_offset"}``."""
        query = self._query(
            {"status": status, "name": name, "verdict": verdict, "limit": limit, "offset": offset}
        )
        result: dict[str, Any] = self._send("GET", f"/v1/builds{query}")
        return result

    def recipes(self) -> list[dict[str, Any]]:
        """Recipes of the followed repository."""
        result: list[dict[str, Any]] = self._send("GET", "/v1/recipes")
        return result

    def builder(self, builder_id: str) -> dict[str, Any]:
        """One enrolled builder, as the coordinator shows it (key, arches, hostname)."""
        result: dict[str, Any] = self._send("GET", f"/v1/builders/{builder_id}")
        return result

    def builders(self) -> list[dict[str, Any]]:
        """Every enrolled builder."""
        result: list[dict[str, Any]] = self._send("GET", "/v1/builders")
        return result

    def build(self, build_id: str) -> dict[str, Any]:
        """One build with its results and verdict."""
        result: dict[str, Any] = self._send("GET", f"/v1/builds/{build_id}")
        return result

    def build_when_changed(
        self, build_id: str, since: str | None, wait: float
    ) -> tuple[dict[str, Any], str | None]:
        """The build once it differs from version ``since`` (an ETag this method
        returned), or unchanged after ``wait`` seconds (a long-poll); with its version.

        The version is None from a coordinator without long-polls, which answers at once.
        """
        query = self._query({"wait": wait, "since": since} if since else {})
        response = self._request("GET", f"/v1/builds/{build_id}{query}", longer=wait)
        etag = response.headers.get("etag")
        result: dict[str, Any] = response.json()
        return result, etag.strip('"') if etag else None

    def follow_builds(
        self, build_ids: Sequence[str], timeout: float, *, wait: float = LONG_POLL_S
    ) -> Iterator[list[dict[str, Any]]]:
        """The builds, then again each time one of them changes, until each has a
        verdict or ``timeout`` seconds pass.

        Woken by the coordinator (a long-poll per build, each in its own thread); one
        without long-polls is read every :data:`LEGACY_POLL_S` seconds. A coordinator's
        error is raised here.
        """
        deadline = time.monotonic() + timeout
        events: queue.Queue[tuple[str, dict[str, Any] | Exception | None]] = queue.Queue()
        stop = threading.Event()

        def follow(build_id: str) -> None:
            since: str | None = None
            try:
                while not stop.is_set():
                    left = max(0.0, deadline - time.monotonic())
                    view, since = self.build_when_changed(build_id, since, min(wait, left))
                    events.put((build_id, view))
                    if view.get("verdict") is not None or time.monotonic() >= deadline:
                        break
                    if since is None:  # a coordinator without long-polls
                        stop.wait(min(LEGACY_POLL_S, left))
            except Exception as exc:  # raised in the caller's thread
                events.put((build_id, exc))
            events.put((build_id, None))

        latest: dict[str, dict[str, Any]] = {}
        following = set(build_ids)
        threads = [
            threading.Thread(target=follow, args=(i,), name=f"follow-{i[:12]}", daemon=True)
            for i in following
        ]
        for thread in threads:
            thread.start()
        try:
            while following:
                build_id, event = events.get()
                if isinstance(event, Exception):
                    raise event
                if event is None:
                    following.discard(build_id)
                    continue
                changed = latest.get(build_id) != event
                latest[build_id] = event
                if changed and len(latest) == len(set(build_ids)):
                    yield [latest[i] for i in build_ids]
        finally:
            stop.set()
