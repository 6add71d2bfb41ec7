"""The coordinator's REST API (FastAPI): the app factory.

Reads are public. Every write is authenticated: operators by a bearer token (stored
hashed), builders by a signature of their enrolled key over the request
(:mod:`farm.coordinator.auth`), except enrollment, which spends a one-time token.
Routes return the ``XPublic`` models, never table rows.

The pieces: :mod:`api.coordinator.runtime` owns the process's services and their
lifecycle; :mod:`api.coordinator.deps` is what routes depend on;
:mod:`api.coordinator.routes` holds the routes, one module per domain;
:mod:`api.coordinator.errors` maps farm's errors to HTTP in one place;
:mod:`api.coordinator.dashboard` is the operator's HTML view; ``GET /healthz``,
``/readyz`` (:mod:`api.coordinator.readiness`) and ``/metrics``
(:mod:`api.coordinator.metrics`) are the operator's probes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial

from fastapi import FastAPI
from sqlalchemy.engine import Engine

from api.coordinator import dashboard
from api.coordinator._changes import commits_of
from api.coordinator.errors import install_error_handlers
from api.coordinator.metrics import coordinator_registry
from api.coordinator.readiness import coordinator_checks
from api.coordinator.routes import (
    attestations,
    builders,
    builds,
    ledger,
    recipes,
    reports,
    revocations,
    staging,
)
from api.coordinator.runtime import lifespan, make_runtime
from api.errors import ERROR_RESPONSES
from farm.coordinator.db import create_tables, make_engine
from farm.coordinator.models import utcnow
from farm.coordinator.settings import CoordinatorSettings
from farm.health_http import add_operations_routes

__all__ = ["create_app", "create_app_from_env"]


def create_app(
    settings: CoordinatorSettings | None = None,
    *,
    engine: Engine | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> FastAPI:
    """The coordinator's API over ``settings.db_url`` (or ``engine``); creates the tables."""
    settings = settings or CoordinatorSettings()
    engine = engine or make_engine(settings.db_url)
    create_tables(engine)
    commits_of(engine)  # every commit from now on wakes the long-polls of builds
    runtime = make_runtime(settings, engine, clock)
    app = FastAPI(
        title="farm coordinator",
        version="1",
        description="Builders enroll and send signed results; operators approve and read.",
        lifespan=partial(lifespan, runtime),
        responses=ERROR_RESPONSES,
        routes=dashboard.router.routes,  # the operator dashboard (not in the OpenAPI)
    )
    app.state.farm = runtime
    install_error_handlers(app)
    for domain in (builders, staging, builds, recipes, attestations, revocations, ledger, reports):
        domain.add_routes(app)
    add_operations_routes(app, partial(coordinator_checks, runtime), coordinator_registry(runtime))
    return app


def create_app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory``: settings from ``FARM_COORDINATOR_*``."""
    return create_app(CoordinatorSettings())
