"""What routes depend on: the runtime, a database session per request, the operator's
token, a builder's signed request, and the shared page parameters.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Query, Request
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from api.coordinator.runtime import Runtime
from farm.coordinator import service
from farm.coordinator.auth import SignedRequest, verify_request
from farm.coordinator.errors import (
    AuthenticationError,
    PermissionDeniedError,
    StagingError,
)
from farm.coordinator.models import (
    Builder,
    BuilderPublic,
)

__all__ = [
    "BuilderCaller",
    "BuilderDep",
    "Limit",
    "Offset",
    "OperatorDep",
    "SessionDep",
    "approved",
    "builder_public",
    "operator",
    "operator_name",
    "request_session",
    "runtime",
]


@dataclass(frozen=True)
class BuilderCaller:
    """A builder whose request signature verified, and the body it signed."""

    builder_id: str
    approved: bool
    body: bytes


def runtime(request: Request) -> Runtime:
    state: Runtime = request.app.state.farm
    return state


async def request_session(request: Request) -> AsyncIterator[Session]:
    """A session for one request. An async generator, so FastAPI opens and closes it on
    the event loop: a sync one costs two extra thread hops per request (about a third of
    a small query's time). Opening connects nothing; closing only returns the connection."""
    with Session(runtime(request).engine, expire_on_commit=False) as session:
        yield session


SessionDep = Annotated[Session, Depends(request_session)]


def operator(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    operator_name(request, authorization)


def operator_name(request: Request, authorization: Annotated[str | None, Header()] = None) -> str:
    """The name of the operator token the request carries; 401 without a valid one."""
    scheme, _, secret = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not secret:
        raise AuthenticationError("operator token required (Authorization: Bearer <token>)")
    with Session(runtime(request).engine) as session:
        return service.authenticate_operator(session, secret.strip()).name


async def _builder(request: Request) -> BuilderCaller:
    state = runtime(request)
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > state.settings.max_upload:
        raise StagingError(
            f"body of {length} bytes exceeds the limit of {state.settings.max_upload}"
        )
    body = await request.body()
    if len(body) > state.settings.max_upload:
        raise StagingError(f"body exceeds the limit of {state.settings.max_upload} bytes")
    signed = SignedRequest.from_headers(request.headers)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")

    def check() -> BuilderCaller:
        with Session(state.engine) as session:
            builder = session.get(Builder, signed.builder_id)
            if builder is None:
                raise AuthenticationError(f"builder {signed.builder_id[:64]} is not enrolled")
            now = state.clock().timestamp()
            window = state.settings.request_window
            verify_request(signed, builder.public_key, request.method, target, body, now, window)
            state.replay.check_and_add(signed, now, window)
            return BuilderCaller(builder.id, builder.approved, body)

    return await run_in_threadpool(check)


BuilderDep = Annotated[BuilderCaller, Depends(_builder)]


OperatorDep = Depends(operator)


def approved(caller: BuilderCaller) -> None:
    if not caller.approved:
        raise PermissionDeniedError(f"builder {caller.builder_id[:12]} is not approved yet")


def builder_public(builder: Builder) -> BuilderPublic:
    rate = builder.agreements / builder.builds_done if builder.builds_done else None
    return BuilderPublic.model_validate({**builder.model_dump(), "agreement_rate": rate})


Limit = Annotated[int, Query(ge=1, le=500, description="Items per page.")]


Offset = Annotated[int, Query(ge=0, le=2**31 - 1, description="Items to skip.")]
