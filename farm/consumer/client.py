"""Talking to a distribution node (and, for consistency proofs, to validators).

Nothing the node says is believed here: answers are parsed into the contract's models
(:mod:`farm.evidence`) and handed to :mod:`farm.consumer.verify`. What this module
does enforce is the transport's side of the threat model: a blob is hashed while it
streams, a declared ``Content-Length`` above the attested size is refused before
reading, and a body that runs past the attested size is cut off (endless data).
Every failure is a :class:`~farm.consumer.errors.NodeError` (or RevokedError for the
node's own 410 answer) with one line saying what happened.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any, BinaryIO, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from farm.consumer.errors import NodeError, RevokedError
from farm.evidence import ArtifactEvidence, ArtifactInfo, PackageRelease

__all__ = ["CHUNK", "MAX_JSON", "NodeClient", "consistency_proofs"]

CHUNK = 1 << 20
MAX_JSON = 64 << 20
"""Largest JSON answer read from a node (a release of many artifacts fits easily)."""
_M = TypeVar("_M", bound=BaseModel)


class _TooLarge(Exception):
    """A body longer than MAX_JSON."""


def _get_limited(
    http: httpx.Client, url: str, params: dict[str, Any] | None
) -> tuple[int, str, bytes]:
    """(status, reason, body) of a GET, reading at most MAX_JSON bytes (else _TooLarge)."""
    with http.stream("GET", url, params=params) as response:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > MAX_JSON:
                raise _TooLarge
            chunks.append(chunk)
        return response.status_code, response.reason_phrase, b"".join(chunks)


def _error_message(body: bytes, reason: str) -> str:
    """The message of the node's error body (``{"error": {"message"}}``), or its text."""
    try:
        value = json.loads(body)
        if isinstance(value, dict):
            err = value.get("error")
            if isinstance(err, dict) and "message" in err:
                return str(err["message"])
            if "detail" in value:
                return str(value["detail"])
    except ValueError:
        pass
    text = body[:200].decode("utf-8", "replace").replace("\n", " ")
    return text or reason


class NodeClient:
    """A distribution node at ``base_url``."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise NodeError(f"{base_url!r} is not an http(s) URL; pass --node or FARM_DIST_URL")
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url, timeout=timeout, transport=transport, follow_redirects=False
        )

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> NodeClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _get_json(self, path: str, params: dict[str, Any] | None = None) -> tuple[int, Any]:
        """(status, parsed JSON or the error message); a body over MAX_JSON is cut off."""
        try:
            status, reason, body = _get_limited(self._http, path, params)
        except httpx.HTTPError as exc:
            raise NodeError(f"cannot reach the node at {self.base_url}: {exc}") from None
        except _TooLarge:
            raise NodeError(
                f"{self.base_url}{path}: the node's answer runs past {MAX_JSON} bytes "
                "(endless data); cut off, try another node"
            ) from None
        if status != 200:
            return status, _error_message(body, reason)
        try:
            return 200, json.loads(body)
        except ValueError:
            raise NodeError(f"{self.base_url}{path}: the node's answer is not JSON") from None

    def _model(self, model: type[_M], path: str, what: str) -> _M:
        status, body = self._get_json(path)
        if status == 404:
            raise NodeError(f"the node at {self.base_url} has no {what} ({body})")
        if status == 410:
            raise RevokedError(
                f"refused {what}: the node says it is revoked: {body}; do not use it"
            )
        if status != 200:
            raise NodeError(f"the node at {self.base_url} answered {status} for {what}: {body}")
        try:
            return model.model_validate(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise NodeError(
                f"the node's {what} is malformed ({where}: {first['msg']}); try another node"
            ) from None

    def release(self, name: str, version: str) -> PackageRelease:
        """``GET /v1/packages/{name}/{version}``."""
        path = f"/v1/packages/{quote(name, safe='')}/{quote(version, safe='')}"
        return self._model(PackageRelease, path, f"release {name}=={version}")

    def evidence(self, sha256: str) -> ArtifactEvidence:
        """``GET /v1/evidence/sha256/{digest}``."""
        return self._model(ArtifactEvidence, f"/v1/evidence/sha256/{sha256}", f"sha256:{sha256}")

    def consistency(self, old: int, new: int) -> list[bytes] | None:
        """The node's consistency proof from ``old`` to ``new``, or None if it has none."""
        status, body = self._get_json("/v1/proofs/consistency", {"old": old, "new": new})
        if status != 200:
            return None
        return _parse_proof(body)

    def download(
        self, info: ArtifactInfo, out: BinaryIO, progress: Callable[[int], None] | None = None
    ) -> tuple[str, int]:
        """Stream the blob of ``info`` into ``out``; return (sha256 hex, bytes written).

        Raises:
            RevokedError: the node answers 410 (it says the artifact is revoked).
            NodeError: any other status, a Content-Length above ``info.size``, a body
                longer than ``info.size`` (cut off as it arrives) or shorter.
        """
        digest = hashlib.sha256()
        written = 0
        label = f"{info.filename} (sha256:{info.sha256[:12]}…)"
        try:
            with self._http.stream("GET", info.url) as response:
                if response.status_code == 410:
                    raise RevokedError(
                        f"refused {label}: the node says it is revoked: "
                        f"{_error_message(_head(response), response.reason_phrase)}; "
                        "do not use it"
                    )
                if response.status_code != 200:
                    raise NodeError(
                        f"{label}: the node answered {response.status_code}: "
                        f"{_error_message(_head(response), response.reason_phrase)}"
                    )
                declared = response.headers.get("content-length")
                if declared is not None and (not declared.isdigit() or int(declared) > info.size):
                    raise NodeError(
                        f"refused {label}: the node declares {declared} bytes, more than the "
                        f"{info.size} attested (endless data); try another node"
                    )
                for chunk in response.iter_raw(CHUNK):
                    written += len(chunk)
                    if written > info.size:
                        raise NodeError(
                            f"refused {label}: the node sent more than the {info.size} bytes "
                            "declared (endless data); download cut off, try another node"
                        )
                    digest.update(chunk)
                    out.write(chunk)
                    if progress is not None:
                        progress(len(chunk))
        except httpx.HTTPError as exc:
            raise NodeError(f"{label}: download failed after {written} bytes: {exc}") from None
        if written != info.size:
            raise NodeError(
                f"{label}: the node sent {written} of the {info.size} bytes declared; try again"
            )
        return digest.hexdigest(), written


def _head(response: httpx.Response, limit: int = 4096) -> bytes:
    """At most ``limit`` bytes of a streamed error body (never the whole of an endless one)."""
    out = b""
    for chunk in response.iter_raw():
        out += chunk
        if len(out) >= limit:
            break
    return out[:limit]


def _parse_proof(body: Any) -> list[bytes] | None:
    try:
        return [bytes.fromhex(h) for h in body["proof"]]
    except (KeyError, TypeError, ValueError):
        return None


def consistency_proofs(
    node: NodeClient, validator_urls: Sequence[str], old: int, new: int, timeout: float = 10.0
) -> Iterator[list[bytes]]:
    """Candidate consistency proofs from ``old`` to ``new``: the node's, then each
    validator's, fetched lazily. The caller verifies them and takes the first that holds,
    so a lying source can neither pass a bad proof nor hide a good one."""
    proof = node.consistency(old, new)
    if proof is not None:
        yield proof
    with httpx.Client(timeout=timeout) as http:
        for url in validator_urls:
            try:
                status, _, body = _get_limited(
                    http, url.rstrip("/") + "/v1/proofs/consistency", {"old": old, "new": new}
                )
                proof = _parse_proof(json.loads(body)) if status == 200 else None
            except (httpx.HTTPError, _TooLarge, ValueError):
                continue
            if proof is not None:
                yield proof
