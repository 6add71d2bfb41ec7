"""``GET``/``HEAD /artifacts/sha256/{digest}[/{filename}]``, answered in raw ASGI.

This route carries the bytes, so it bypasses FastAPI's routing and middleware (the
idea of :class:`ledger.http._SubmitFirst`): one dictionary lookup in the node's
current :class:`~api.distribution.node.View`, then the file is read with ``os.pread`` in
1 MiB chunks and sent as it is read (a small file in one message).

Semantics (RFC 9110): ``ETag`` is the quoted digest, ``Cache-Control`` immutable for a
year, ``Accept-Ranges: bytes``; ``If-None-Match`` answers 304; a single byte range
answers 206 with ``Content-Range`` (``If-Range`` with another validator gets the whole
file), an unsatisfiable one 416 with ``Content-Range: bytes */size``; several ranges or
a malformed ``Range`` are ignored (the whole file, 200). Anything not committed,
covered by a trusted checkpoint and mirrored is 404; a revoked artifact 410 with the
reason; other methods 405. Errors use the one body shape ``{"error": {...}}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import os
import re
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import PurePosixPath
from typing import Any

from api.errors import ErrorBody, ErrorDetail

__all__ = ["CHUNK", "ArtifactsFirst", "parse_range"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

CHUNK = 1 << 20
"""Bytes read and sent per message for a large file."""

_CACHE = b"public, max-age=31536000, immutable"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_TYPES = {".whl": "application/zip", ".zip": "application/zip", ".gz": "application/gzip"}


def parse_range(header: str, size: int) -> tuple[int, int] | str | None:  # noqa: PLR0911
    """The one byte range ``header`` asks for in a file of ``size`` bytes.

    Returns (first, last) inclusive; None to ignore the header (malformed, or several
    ranges: the whole file is sent); ``"unsatisfiable"`` for 416.
    """
    m = _RANGE.match(header.strip().replace(" ", ""))
    if m is None:
        return None
    start, end = m.group(1), m.group(2)
    if not start and not end:
        return None
    if not start:  # suffix: the last N bytes
        n = int(end)
        if n == 0 or size == 0:
            return "unsatisfiable"
        return max(size - n, 0), size - 1
    first = int(start)
    last = size - 1 if not end else min(int(end), size - 1)
    if end and int(end) < first:
        return None
    if first >= size:
        return "unsatisfiable"
    return first, last


def _content_type(filename: str) -> bytes:
    ext = PurePosixPath(filename).suffix
    guessed = _TYPES.get(ext) or mimetypes.guess_type(filename)[0] or "application/octet-stream"
    return guessed.encode("latin-1")


async def _error(send: Send, status: int, code: str, message: str, *, head: bool = False,
                 extra: list[tuple[bytes, bytes]] | None = None) -> None:  # fmt: skip
    body = ErrorBody(error=ErrorDetail(code=code, message=message)).model_dump_json().encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


class ArtifactsFirst:
    """ASGI: ``/artifacts/`` answered here from ``view()``, everything else by ``app``."""

    def __init__(self, view: Callable[[], Any], app: Callable[..., Awaitable[None]]) -> None:
        self.view = view
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/artifacts/"):
            await self.app(scope, receive, send)
            return
        await self.serve(scope, receive, send)

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one request for an artifact."""
        method = scope["method"]
        head = method == "HEAD"
        if method not in ("GET", "HEAD"):
            await _error(
                send, 405, "method_not_allowed", "the distribution node is read-only",
                extra=[(b"allow", b"GET, HEAD")],
            )  # fmt: skip
            return
        parts = scope["path"].split("/")
        if len(parts) not in (4, 5) or parts[2] != "sha256":
            await _error(send, 404, "not_found", "use /artifacts/sha256/{digest}", head=head)
            return
        digest = parts[3]
        view = self.view()
        reason = view.gone.get(digest)
        if reason is not None:
            await _error(send, 410, "revoked", f"sha256:{digest} was revoked: {reason}", head=head)
            return
        served = view.served.get(digest)
        if served is None or (len(parts) == 5 and parts[4] != served.entry.filename):
            await _error(
                send, 404, "not_found",
                f"{scope['path']} is not a committed artifact of this node", head=head,
            )  # fmt: skip
            return
        await self._send_file(scope, receive, send, served, head)

    async def _send_file(
        self, scope: Scope, receive: Receive, send: Send, served: Any, head: bool
    ) -> None:
        entry = served.entry
        size: int = entry.size
        etag = f'"{entry.sha256}"'.encode()
        request: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            if name in (b"range", b"if-none-match", b"if-range"):
                request[name] = value
        common = [
            (b"etag", etag),
            (b"cache-control", _CACHE),
            (b"accept-ranges", b"bytes"),
        ]
        inm = request.get(b"if-none-match")
        tags = [] if inm is None else [t.strip() for t in inm.split(b",")]
        if b"*" in tags or etag in tags:
            await send({"type": "http.response.start", "status": 304, "headers": common})
            await send({"type": "http.response.body", "body": b""})
            return
        status, first, last = 200, 0, size - 1
        wanted = request.get(b"range")
        if_range = request.get(b"if-range")
        if wanted is not None and (if_range is None or if_range.strip() == etag):
            got = parse_range(wanted.decode("latin-1"), size)
            if got == "unsatisfiable":
                await _error(
                    send, 416, "range_not_satisfiable", f"the artifact has {size} bytes",
                    head=head, extra=[*common, (b"content-range", f"bytes */{size}".encode())],
                )  # fmt: skip
                return
            if isinstance(got, tuple):
                status, (first, last) = 206, got
        length = max(last - first + 1, 0)
        headers = [
            *common,
            (b"content-type", _content_type(entry.filename)),
            (b"content-length", str(length).encode()),
            (b"content-disposition", f'attachment; filename="{entry.filename}"'.encode()),
        ]
        if status == 206:
            headers.append((b"content-range", f"bytes {first}-{last}/{size}".encode()))
        try:
            fd = os.open(served.path, os.O_RDONLY)
        except OSError:
            await _error(send, 404, "not_found", "the artifact's bytes are not here", head=head)
            return
        try:
            await send({"type": "http.response.start", "status": status, "headers": headers})
            if head or length == 0:
                await send({"type": "http.response.body", "body": b""})
            elif length <= CHUNK:
                await send({"type": "http.response.body", "body": os.pread(fd, length, first)})
            else:
                await _stream(fd, first, length, receive, send)
        finally:
            os.close(fd)


async def _stream(fd: int, offset: int, length: int, receive: Receive, send: Send) -> None:
    """Send ``length`` bytes of ``fd`` from ``offset``; stop early if the client goes."""
    gone = asyncio.Event()

    async def watch() -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                gone.set()
                return

    watcher = asyncio.get_running_loop().create_task(watch())
    try:
        end = offset + length
        while offset < end and not gone.is_set():
            chunk = os.pread(fd, min(CHUNK, end - offset), offset)
            if not chunk:
                break
            offset += len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": offset < end})
        if offset < end and not gone.is_set():  # the file shrank: end the response short
            await send({"type": "http.response.body", "body": b""})
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
