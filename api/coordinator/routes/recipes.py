"""The followed recipe repository: its recipes and the push webhook."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, Header, Request
from starlette.concurrency import run_in_threadpool

from api.coordinator.deps import (
    Limit,
    Offset,
    SessionDep,
    operator,
    runtime,
)
from farm.coordinator import recipes_repo
from farm.coordinator.errors import (
    ConflictError,
)
from farm.coordinator.models import (
    RecipeBranchPublic,
    RecipePublic,
)

__all__ = ["add_routes"]


def add_routes(app: FastAPI) -> None:
    """Register these routes on ``app``."""

    @app.get("/v1/recipes", response_model=list[RecipePublic], tags=["recipes"])
    def recipes(session: SessionDep, limit: Limit = 100, offset: Offset = 0) -> list[RecipePublic]:
        """Recipes of the followed repository: digest, status (``scheduled``,
        ``lint_failed``, ``refused_changed``) with its problems, latest verdict."""
        return recipes_repo.list_recipes(session, limit=limit, offset=offset)

    @app.get("/v1/recipes/branches", response_model=list[RecipeBranchPublic], tags=["recipes"])
    def recipe_branches(session: SessionDep) -> list[RecipeBranchPublic]:
        """The followed branch: its tip, last poll and the rewrites (force pushes) seen."""
        return recipes_repo.list_branches(session)

    @app.post("/v1/hooks/push", status_code=202, tags=["recipes"])
    async def push_hook(
        request: Request,
        authorization: Annotated[str | None, Header()] = None,
        x_hub_signature_256: Annotated[str | None, Header()] = None,
    ) -> dict[str, Any]:
        """A push landed: poll the recipe repository now (operator token or webhook HMAC)."""
        state = runtime(request)
        body = await request.body()
        secret = state.settings.webhook_secret
        if not (secret and recipes_repo.signature_matches(secret, body, x_hub_signature_256)):
            await run_in_threadpool(operator, request, authorization)
        if state.follower is None:
            raise ConflictError("this coordinator follows no recipe repository")
        state.follower.wake()
        return {"polling": True}
