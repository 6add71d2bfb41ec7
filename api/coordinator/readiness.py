"""What the coordinator's ``GET /readyz`` checks (:mod:`farm.health`).

Ready means it can do its work now: its database answers; with a scheduler
(``--redis-url``), the builders' broker answers ``PING``; with a ledger (``--ledger``),
at least one validator answers ``GET /v1/status``. Each probe is bounded by
:data:`PROBE_TIMEOUT` seconds, so ``/readyz`` answers within a few seconds even when
everything it depends on is down.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import text

from farm.health import Check, probe

if TYPE_CHECKING:
    from api.coordinator.runtime import Runtime

__all__ = ["PROBE_TIMEOUT", "coordinator_checks"]

PROBE_TIMEOUT = 2.0
"""Seconds one probe (Redis, one validator) may take."""


def coordinator_checks(runtime: Runtime) -> list[Check]:
    """The database, the broker (with a scheduler), a validator (with a ledger)."""

    def database() -> str:
        with runtime.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return runtime.engine.dialect.name

    checks = [probe("database", database)]
    settings = runtime.settings
    if settings.redis_url:
        redis_url = settings.redis_url

        def broker() -> str:
            import redis

            client = redis.Redis.from_url(
                redis_url, socket_timeout=PROBE_TIMEOUT, socket_connect_timeout=PROBE_TIMEOUT
            )
            try:
                client.ping()
            finally:
                client.close()
            return "PING answered"

        checks.append(probe("redis", broker))
    if runtime.ledger is not None:
        urls = list(runtime.ledger.urls)

        def validator() -> str:
            import httpx

            errors = []
            with httpx.Client(timeout=PROBE_TIMEOUT) as client:
                for url in urls:
                    try:
                        if client.get(f"{url}/v1/status").status_code == 200:
                            return f"{url} answers"
                        errors.append(f"{url}: not 200")
                    except httpx.HTTPError as exc:
                        errors.append(f"{url}: {type(exc).__name__}")
            raise ConnectionError("no validator answers (" + "; ".join(errors) + ")")

        checks.append(probe("ledger", validator))
    return checks
