"""Which builders are running: heartbeats in Redis.

A running builder worker announces itself every few seconds under
``farm:builders:<id>`` with a short expiry; a builder not heard from recently simply
disappears. Choosing builders for a build is pure (:func:`pick_builders`).

Note: the public key a builder announces here is what ``farm build`` checks its
envelope against; enrollment with an operator's approval (the coordinator) is what
makes a key trusted beyond one local run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import redis
from pydantic import BaseModel, ConfigDict, ValidationError

from farm.errors import ConfigError

__all__ = ["BuilderInfo", "announce", "heard", "list_builders", "pick_builders", "withdraw"]

_PREFIX = "farm:builders:"
HEARTBEAT_TTL = 15


class BuilderInfo(BaseModel):
    """What a running builder says about itself."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    builder_id: str
    public_key: dict[str, Any]
    arches: tuple[str, ...]
    hostname: str
    pid: int
    queue: str
    started_at: datetime
    seen_at: datetime


def announce(client: redis.Redis, info: BuilderInfo, ttl: int = HEARTBEAT_TTL) -> None:
    """Record (or refresh) a builder's heartbeat."""
    client.set(_PREFIX + info.builder_id, info.model_dump_json(), ex=ttl)


def heard(client: redis.Redis, builder_id: str) -> BuilderInfo | None:
    """``builder_id``'s own heartbeat, if it has one (readable with a broker credential
    limited to that builder's keys, unlike :func:`list_builders`)."""
    raw = client.get(_PREFIX + builder_id)
    if raw is None:
        return None
    try:
        return BuilderInfo.model_validate(json.loads(raw))
    except (ValidationError, ValueError):
        return None


def withdraw(client: redis.Redis, builder_id: str) -> None:
    """Remove a builder's heartbeat (on clean shutdown)."""
    client.delete(_PREFIX + builder_id)


def list_builders(client: redis.Redis) -> list[BuilderInfo]:
    """Every builder heard from recently, sorted by id; unreadable entries are skipped."""
    out: list[BuilderInfo] = []
    for key in client.scan_iter(match=_PREFIX + "*", count=500):
        raw = client.get(key)
        if raw is None:
            continue
        try:
            out.append(BuilderInfo.model_validate(json.loads(raw)))
        except (ValidationError, ValueError):
            continue
    return sorted(out, key=lambda b: b.builder_id)


def pick_builders(
    builders: Sequence[BuilderInfo], arch: str, count: int, *, only: Sequence[str] = ()
) -> list[BuilderInfo]:
    """``count`` distinct builders that can build ``arch``; raise :class:`ConfigError` if too few.

    ``only`` restricts the choice to builder ids starting with one of its prefixes.
    """
    able = [b for b in builders if arch in b.arches]
    if only:
        able = [b for b in able if any(b.builder_id.startswith(p) for p in only)]
    distinct = list({b.builder_id: b for b in able}.values())
    if len(distinct) < count:
        running = ", ".join(b.builder_id[:12] for b in builders) or "none"
        raise ConfigError(
            f"{len(distinct)} running builder(s) can build {arch}, {count} needed "
            f"(running: {running}); start more with `farm builder run`"
        )
    return distinct[:count]
