"""``farm build`` over several architectures: one build id each, and the cross-arch check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from farm import queue, registry
from farm.cli import build_cmd
from farm.errors import QuorumError
from farm.keys import generate_key, save_key
from tests.unit.farm.conftest import BASE_RECIPE


def test_each_architecture_is_its_own_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A builder answers a task by (build id, builder id): one id across architectures
    handed arm64 the amd64 result. Each architecture gets its own."""
    key = tmp_path / "coordinator.key"
    save_key(generate_key(), key)
    recipe = tmp_path / "demo.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {**BASE_RECIPE, "architectures": ["amd64", "arm64"],
             "images": {"arm64": "sha256:" + "cd" * 32}}
        )
    )  # fmt: skip
    monkeypatch.setattr(redis.Redis, "from_url", staticmethod(lambda _url: object()))
    monkeypatch.setattr(registry, "list_builders", lambda _client: [])
    monkeypatch.setattr(registry, "pick_builders", lambda _running, arch, _n: [])
    monkeypatch.setattr(queue, "make_celery", lambda _url: object())
    sent: list[tuple[str, str]] = []

    def run_builds(
        _app: Any, _recipe: Any, arch: str, _b: Any, build_id: str, _w: float, _signer: Any
    ) -> list[Any]:
        sent.append((arch, build_id))
        return []

    monkeypatch.setattr(build_cmd, "run_builds", run_builds)
    out = tmp_path / "report.json"
    with pytest.raises(QuorumError):  # no builders here: nothing verifies
        build_cmd.build(recipe, builders=1, json_out=out, coordinator_key=key)
    assert [a for a, _ in sent] == ["amd64", "arm64"]
    assert sent[0][1] != sent[1][1]
    report = json.loads(out.read_text())
    assert report["build_ids"] == dict(sent)
    assert report["cross_arch"]["verdict"] == "not_applicable"
