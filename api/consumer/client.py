"""Talking to a distribution node (and, for consistency proofs, to validators).

Nothing the node says is believed here: answers are parsed into the contract's models
(:mod:`api.dist.models`) and handed to :mod:`api.consumer.verify`. What this module
does enforce is the transport's side of the threat model: a blob is hashed while it
streams, a declared ``Content-Length`` above the attested size is refused before
reading, and a body that runs past the attested size is cut off (endless data).
Every failure is a :class:`~api.consumer.errors.NodeError` (or RevokedError for the
node's own 410 answer) with one line saying what happened.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any, BinaryIO, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from api.consumer.errors import NodeError, RevokedError
from api.dist.models import ArtifactEvidence, ArtifactInfo, PackageRelease

__all__ = ["CHUNK", "NodeClient", "fetch_consistency"]

CHUNK = 1 << 20
_M = TypeVar("_M", bound=BaseModel)


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
        if isinstance(body, dict):
            err = body.get("error")
            if isinstance(err, dict) and "message" in err:
                return str(err["message"])
            if "detail" in body:
                return str(body["detail"])
    except ValueError:
        pass
    return response.text[:200].replace("\n", " ") or response.reason_phrase


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
        try:
            response = self._http.get(path, params=params)
        except httpx.HTTPError as exc:
            raise NodeError(f"cannot reach the node at {self.base_url}: {exc}") from None
        if response.status_code != 200:
            return response.status_code, _error_message(response)
        try:
            return 200, response.json()
        except ValueError:
            raise NodeError(f"{self.base_url}{path}: the node's answer is not JSON") from None

    def _model(self, model: type[_M], path: str, what: str) -> _M:
        status, body = self._get_json(path)
        if status == 404:
            raise NodeError(f"the node at {self.base_url} has no {what} ({body})")
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
                    response.read()
                    raise RevokedError(
                        f"refused {label}: the node says it is revoked: "
                        f"{_error_message(response)}; do not use it"
                    )
                if response.status_code != 200:
                    response.read()
                    raise NodeError(
                        f"{label}: the node answered {response.status_code}: "
                        f"{_error_message(response)}"
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


def _parse_proof(body: Any) -> list[bytes] | None:
    try:
        return [bytes.fromhex(h) for h in body["proof"]]
    except (KeyError, TypeError, ValueError):
        return None


def fetch_consistency(
    node: NodeClient, validator_urls: Sequence[str], old: int, new: int, timeout: float = 10.0
) -> list[bytes] | None:
    """A consistency proof from ``old`` to ``new``: from the node, else from the first
    validator that gives one. It is verified by the caller, so any source will do."""
    proof = node.consistency(old, new)
    if proof is not None:
        return proof
    for url in validator_urls:
        try:
            response = httpx.get(
                url.rstrip("/") + "/v1/proofs/consistency",
                params={"old": old, "new": new},
                timeout=timeout,
            )
            if response.status_code == 200:
                proof = _parse_proof(response.json())
                if proof is not None:
                    return proof
        except (httpx.HTTPError, ValueError):
            continue
    return None
