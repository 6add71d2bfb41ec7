"""Liveness and readiness of every long-running farm service, as values.

Each service answers ``GET /healthz`` (alive: 200 ``{"status": "ok"}`` while the
process serves) and ``GET /readyz``: 200 when every readiness check passes, otherwise
503 with a body naming each failed check and why (:func:`readiness`). What a service
checks is decided here, in pure functions of what it observed (:func:`validator_checks`,
:func:`distribution_checks`); the I/O of a probe (a database query, a Redis ``PING``,
a Docker call) is wrapped by :func:`probe`, which turns any exception into a failed
check, so a readiness answer never raises.

Invariants: readiness fails closed (no checks at all is not ready); every failed check
carries a one-line reason; the answer depends only on the checks given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "HEALTHY",
    "Check",
    "distribution_checks",
    "probe",
    "readiness",
    "validator_checks",
]

HEALTHY: dict[str, str] = {"status": "ok"}
"""The body of every ``GET /healthz``."""


@dataclass(frozen=True)
class Check:
    """One readiness check: its name, whether it passed, and why (or what it saw)."""

    name: str
    ok: bool
    detail: str = ""


def probe(name: str, attempt: Callable[[], str | None]) -> Check:
    """Run ``attempt`` (I/O: it returns what it saw, or raises) as the check ``name``.

    Any exception fails the check with its type and message; nothing is raised.
    """
    try:
        seen = attempt()
    except Exception as exc:  # a probe reports, it never propagates
        text = str(exc).strip().splitlines()
        return Check(name, False, f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": "))
    return Check(name, True, seen or "ok")


def readiness(checks: Sequence[Check]) -> tuple[int, dict[str, Any]]:
    """The status and JSON body of ``GET /readyz`` for ``checks``.

    200 ``{"status": "ready", "checks": {...}}`` when every check passed; otherwise
    503 ``{"status": "unready", "failed": [names], "checks": {...}}``. No checks at
    all is unready (fail closed).
    """
    body_checks = {c.name: {"ok": c.ok, "detail": c.detail} for c in checks}
    failed = [c.name for c in checks if not c.ok]
    if not checks:
        failed = ["checks"]
        body_checks = {"checks": {"ok": False, "detail": "no readiness check defined"}}
    if failed:
        return 503, {"status": "unready", "failed": failed, "checks": body_checks}
    return 200, {"status": "ready", "checks": body_checks}


def max_faulty(n: int) -> int:
    """f for ``n`` validators (n >= 3f + 1)."""
    return max((n - 1) // 3, 0)


def validator_checks(
    *,
    height: int,
    syncing: bool,
    peer_heights: Mapping[str, int],
    connected: int,
    validators: int,
) -> list[Check]:
    """A validator is ready when caught up and connected to at least 2f peers.

    Caught up: not fetching blocks, and no peer known more than one height ahead (a
    peer one ahead is only the height being decided; two ahead is when catch-up
    starts, see :meth:`ledger.node.Node.maybe_sync`).
    """
    need = 2 * max_faulty(validators)
    best = max(peer_heights.values(), default=0)
    if syncing:
        caught = Check("caught_up", False, f"catching up: height {height}, peers at {best}")
    elif best >= height + 2:
        caught = Check("caught_up", False, f"height {height} is behind peers at {best}")
    else:
        caught = Check("caught_up", True, f"height {height}, peers at {best}")
    peers = Check(
        "peers",
        connected >= need,
        f"{connected} peer(s) connected, {need} (2f of n={validators}) needed",
    )
    return [caught, peers]


def distribution_checks(
    *, followed: bool, checkpoint_time: float, now: float, max_age: float
) -> list[Check]:
    """A distribution node is ready once it followed the ledger at least once and its
    newest checkpoint was vouched for by 2f+1 validators at most ``max_age`` seconds
    ago (``checkpoint_time`` 0: it has none)."""
    follow = Check(
        "followed",
        followed,
        "followed the ledger" if followed else "no validator answered a poll yet",
    )
    if checkpoint_time <= 0:
        fresh = Check("checkpoint", False, "no co-signed checkpoint yet")
    else:
        age = now - checkpoint_time
        fresh = Check(
            "checkpoint",
            age <= max_age,
            f"checkpoint {age:.0f} s old, at most {max_age:g} s allowed",
        )
    return [follow, fresh]
