"""Each validator's HTTP API (FastAPI, served by uvicorn on the node's own loop).

Routes::

    POST /v1/tx                         submit; answers once committed (or refused)
    GET  /v1/blocks/{h}                 a block with its commit certificate
    GET  /v1/blocks?start=&limit=       consecutive blocks (what catch-up reads)
    GET  /v1/entries/{i}                one log entry
    GET  /v1/checkpoint                 the latest co-signed checkpoint (signed note)
    GET  /v1/proofs/inclusion?index=&size=
    GET  /v1/proofs/consistency?old=&new=
    GET  /v1/evidence?validator=&start=&limit=
                                        equivocations this validator saw
    GET  /v1/status                     height, log size, connected peers, evidence count
    GET  /v1/metrics?since=             counters and per-height phase times (ledger.metrics)
    GET  /healthz, /readyz              alive; ready (caught up, 2f peers: farm.health)
    GET  /metrics                       Prometheus text (ledger.prometheus)

Every error has one body shape, ``{"error": {"code": ..., "message": ...}}``
(:func:`_error_body`); the mapping from errors to statuses is :class:`ApiError` as
raised in the routes, :func:`_error` and the handlers below, nowhere else.

``POST /v1/tx``, the route every transaction takes, is answered by a thin ASGI layer
in front of FastAPI (:class:`_SubmitFirst`) with the same answers byte for byte; its
logic is :func:`submit_tx`, shared with the FastAPI route.

``GET /v1/evidence`` answers ``{"evidence": [record, ...], "next": id | null}``: the
stored equivocations (:class:`ledger.storage.EvidenceRecord`, oldest first, of one
``validator`` if given) with id ``start`` or more, at most ``limit``
(:data:`MAX_EVIDENCE_PER_PAGE`); ``next`` is the ``start`` of the following page. Each
record carries both signed messages in wire form, so anyone holding the genesis can
re-check it with :func:`ledger.verify.verify_equivocation` without trusting this node.
A ``validator`` that is not in the genesis is a 404.

``POST /v1/tx`` takes the transaction's bytes as the body, or JSON ``{"tx": base64}``.
It checks the transaction against the validator's current state first (400 with the
reason when it is invalid), recognises one already committed (200 with its entry),
then waits for the commit (504 after ``commit_wait``) and, up to ``checkpoint_wait``
more, for a co-signed checkpoint that covers it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import socket
from collections.abc import Generator
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from starlette.exceptions import HTTPException as StarletteHTTPException

from farm.errors import ConfigError
from farm.health_http import add_operations_routes
from farm.transactions import tx_id
from ledger.errors import LedgerError
from ledger.ports import ServedLedger

__all__ = ["ApiError", "HttpServer", "make_app"]

MAX_BLOCKS_PER_PAGE = 64
MAX_EVIDENCE_PER_PAGE = 64


class ApiError(Exception):
    """An error answered with ``status`` and the standard body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(_error_body(code, message), status_code=status)


def _tx_from_body(body: bytes, content_type: str) -> bytes:
    if content_type.startswith("application/json"):
        try:
            value = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            value = None
        if isinstance(value, dict) and set(value) == {"tx"}:
            if not isinstance(value["tx"], str):
                raise ApiError(400, "bad_request", '"tx" must be base64 text')
            try:
                return base64.b64decode(value["tx"], validate=True)
            except (binascii.Error, ValueError):
                raise ApiError(400, "bad_request", '"tx" is not valid base64') from None
    return body


def make_app(node: ServedLedger, registry: CollectorRegistry | None = None) -> FastAPI:
    """The API of ``node``; ``/metrics`` serves ``registry`` (default: an empty one)."""
    app = FastAPI(title="farm ledger validator", version="1", docs_url=None, redoc_url=None)
    _add_error_handlers(app)
    _add_submit(app, node)
    _add_reads(app, node)
    add_operations_routes(app, node.readiness, registry or CollectorRegistry())
    return app


def _latest_note(node: ServedLedger) -> tuple[int, str] | None:
    return node.latest_note()


def _add_error_handlers(app: FastAPI) -> None:
    """Every error answers ``{"error": {"code", "message"}}``."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error(400, "bad_request", f"{where}: {first.get('msg')}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, "http_error", str(exc.detail))


def _add_reads(app: FastAPI, node: ServedLedger) -> None:
    """Blocks, entries, checkpoints, proofs, evidence, status."""

    def entry_body(index: int) -> dict[str, Any]:
        tx = node.store.entry(index)
        if tx is None:
            raise ApiError(404, "not_found", f"no entry {index}; the log has {node.state.size}")
        return {
            "index": index,
            "height": node.height_of(index),
            "tx_id": tx_id(tx),
            "tx": base64.b64encode(tx).decode("ascii"),
        }

    def block_body(h: int) -> dict[str, Any]:
        got = node.store.block(h)
        if got is None:
            raise ApiError(404, "not_found", f"no block {h}; the height is {node.height}")
        block, cert = got
        return {"block": block.to_json(), "certificate": cert.to_json()}

    @app.get("/v1/blocks/{h}")
    async def get_block(h: int) -> dict[str, Any]:
        return block_body(h)

    @app.get("/v1/blocks")
    async def get_blocks(start: int, limit: int = 16) -> dict[str, Any]:
        end = min(node.height, start + max(1, min(limit, MAX_BLOCKS_PER_PAGE)) - 1)
        return {
            "blocks": [
                {"block": b.to_json(), "certificate": c.to_json()}
                for b, c in node.store.blocks(max(start, 1), end)
            ]
        }

    @app.get("/v1/entries/{i}")
    async def get_entry(i: int) -> dict[str, Any]:
        if not 0 <= i < node.state.size:
            raise ApiError(404, "not_found", f"no entry {i}; the log has {node.state.size}")
        return entry_body(i)

    @app.get("/v1/checkpoint")
    async def get_checkpoint() -> dict[str, Any]:
        cp = _latest_note(node)
        if cp is None:
            raise ApiError(404, "not_found", "no co-signed checkpoint yet")
        return {"size": cp[0], "note": cp[1]}

    @app.get("/v1/proofs/inclusion")
    async def inclusion(index: int, size: int) -> dict[str, Any]:
        if not 0 <= index < size <= node.state.size:
            raise ApiError(400, "bad_request", f"need 0 <= index < size <= {node.state.size}")
        proof = node.state.log.inclusion_proof(index, size)
        return {
            "index": index,
            "size": size,
            "leaf_hash": node.state.log.leaf_hash(index).hex(),
            "root": node.state.log.root(size).hex(),
            "proof": [h.hex() for h in proof],
        }

    @app.get("/v1/proofs/consistency")
    async def consistency(old: int, new: int) -> dict[str, Any]:
        if not 0 <= old <= new <= node.state.size:
            raise ApiError(400, "bad_request", f"need 0 <= old <= new <= {node.state.size}")
        proof = node.state.log.consistency_proof(old, new)
        return {"old": old, "new": new, "proof": [h.hex() for h in proof]}

    @app.get("/v1/evidence")
    async def get_evidence(
        validator: str | None = None, start: int = 0, limit: int = 16
    ) -> dict[str, Any]:
        if validator is not None and validator not in node.validators.keys:
            raise ApiError(404, "not_found", f"{validator!r} is not a validator of this chain")
        page = max(1, min(limit, MAX_EVIDENCE_PER_PAGE))
        records = node.store.evidence(validator=validator, start=start, limit=page)
        return {
            "evidence": [r.to_json() for r in records],
            "next": records[-1].id + 1 if len(records) == page else None,
        }

    @app.get("/v1/status")
    async def status() -> dict[str, Any]:
        return node.status()

    @app.get("/v1/metrics")
    async def metrics(since: int = 0) -> dict[str, Any]:
        return node.metrics_snapshot(since)


def _add_submit(app: FastAPI, node: ServedLedger) -> None:
    """POST /v1/tx (also answered, without FastAPI's routing, by :class:`_SubmitFirst`)."""

    @app.post("/v1/tx")
    async def submit(request: Request) -> dict[str, Any]:
        body = await request.body()
        return await submit_tx(node, body, request.headers.get("content-type", ""))


async def _committed_answer(
    node: ServedLedger, tid: str, index: int, height: int
) -> dict[str, Any]:
    await node.wait_checkpoint(index + 1, node.settings.checkpoint_wait)
    cp = _latest_note(node)
    size = cp[0] if cp is not None and cp[0] > index else node.state.size
    proof = node.state.log.inclusion_proof(index, size)
    return {
        "index": index,
        "tx_id": tid,
        "height": height,
        "tree_size": size,
        "inclusion_proof": [h.hex() for h in proof],
        "checkpoint": cp[1] if cp is not None and cp[0] == size else None,
    }


async def submit_tx(node: ServedLedger, body: bytes, content_type: str) -> dict[str, Any]:
    """What POST /v1/tx answers for ``body``; raises ApiError for every refusal."""
    tx = _tx_from_body(body, content_type)
    if len(tx) > node.settings.max_tx_bytes:
        raise ApiError(413, "too_large", f"transaction larger than {node.settings.max_tx_bytes}")
    tid = tx_id(tx)
    done = node.lookup(tid)
    if done is None and tid not in node.mempool:
        reason = node.state.check(tx)
        if reason is not None:
            raise ApiError(400, "invalid_transaction", reason)
    try:
        tid, fut = node.submit(tx)
    except LedgerError as exc:
        raise ApiError(503, "unavailable", str(exc)) from None
    try:
        info = await asyncio.wait_for(asyncio.shield(fut), node.settings.commit_wait)
    except TimeoutError:
        raise ApiError(
            504, "timeout", f"not committed within {node.settings.commit_wait:g} s"
        ) from None
    except LedgerError as exc:
        raise ApiError(400, "invalid_transaction", str(exc)) from None
    return await _committed_answer(node, tid, info.index, info.height)


def _json_bytes(value: Any) -> bytes:
    """The bytes Starlette's JSONResponse renders for ``value``."""
    return json.dumps(
        value, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")


class _SubmitFirst:
    """ASGI: ``POST /v1/tx`` straight to :func:`submit_tx`, everything else to the app.

    The submit route is the one every transaction takes; FastAPI's middleware, routing
    and dependency machinery cost more per request there than the route itself. The
    answers (status, body bytes, content type) are those the FastAPI route gives, and
    a request whose body exceeds the largest transaction is refused as it arrives.
    """

    def __init__(self, node: ServedLedger, app: FastAPI) -> None:
        self.node = node
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if not (
            scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == "/v1/tx"
        ):
            await self.app(scope, receive, send)
            return
        content_type = ""
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.decode("latin-1")
        # JSON bodies carry base64 (4/3 the size) plus a little framing: a body beyond
        # this limit cannot hold a transaction that fits, so it is refused as it comes.
        most = self.node.settings.max_tx_bytes
        limit = 2 * most + 1024
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                too_large = _error_body("too_large", f"transaction larger than {most}")
                await _send_json(send, 413, too_large)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        try:
            answer = await submit_tx(self.node, b"".join(chunks), content_type)
        except ApiError as exc:
            await _send_json(send, exc.status, _error_body(exc.code, exc.message))
            return
        await _send_json(send, 200, answer)


def _error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


async def _send_json(send: Any, status: int, value: Any) -> None:
    body = _json_bytes(value)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-length", str(len(body)).encode("ascii")),
                (b"content-type", b"application/json"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the node's process owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class HttpServer:
    """The API bound to ``host:port``, served as a task of the running loop."""

    def __init__(
        self,
        node: ServedLedger,
        host: str,
        port: int,
        registry: CollectorRegistry | None = None,
    ) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((host.strip("[]"), port))
        except OSError as exc:
            self._sock.close()
            raise ConfigError(f"cannot serve HTTP on {host}:{port}: {exc.strerror}") from None
        config = uvicorn.Config(
            _SubmitFirst(node, make_app(node, registry)),
            log_level="warning",
            log_config=None,  # uvicorn's lines go through the process's handler (farm.logs)
            lifespan="off",
            access_log=False,
        )
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Serve in the background."""
        self._task = asyncio.get_running_loop().create_task(self._server.serve([self._sock]))

    async def close(self) -> None:
        """Stop accepting, finish in-flight requests briefly, close."""
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self._task, 3.0)
        self._sock.close()
