"""Builders, a recipe and signed results for coordinator tests."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from farm.keys import KeyPair
from farm.recipe import Recipe, parse_recipe
from farm.result import BuildPredicate, OutputDigest, sign_result
from tests.unit.farm.conftest import BASE_RECIPE

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
WHEEL = "demo-1.0.0-py3-none-any.whl"
GOOD = b"the reproducible wheel bytes"
BAD = b"something else entirely"


def recipe(upstream: bytes | None = None) -> Recipe:
    data: dict[str, Any] = dict(BASE_RECIPE)
    if upstream is not None:
        data["upstream"] = [{"output": WHEEL, "sha256": sha(upstream)}]
    return parse_recipe(data)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def envelope(
    key: KeyPair,
    r: Recipe,
    build_id: str,
    content: bytes = GOOD,
    *,
    claimed: bytes | None = None,
    **changes: Any,
) -> dict[str, Any]:
    """A result of ``key`` whose output is ``content`` (or claims ``claimed``'s digest)."""
    digest_of = claimed if claimed is not None else content
    values: dict[str, Any] = {
        "build_id": build_id,
        "recipe_digest": r.digest,
        "recipe_name": r.name,
        "recipe_version": r.version,
        "image_digest": r.image,
        "arch": "amd64",
        "builder_id": key.keyid,
        "started_at": NOW,
        "finished_at": NOW,
        "status": "succeeded",
        "exit_code": 0,
        "log_sha256": "3" * 64,
        "outputs": (OutputDigest(name=WHEEL, sha256=sha(digest_of), size=len(content)),),
    }
    values.update(changes)
    return sign_result(BuildPredicate(**values), key)
