"""A builder runs only tasks its coordinator signed for it (ADR 41), and a result in
Redis counts only if it is its own signed one. Fake engine and fake Redis; no Docker.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from builders import tasks as tasks_module
from builders.settings import BuilderSettings
from builders.tasks import result_key
from builders.worker import run_worker
from farm.errors import ConfigError, TaskRefusedError
from farm.keys import generate_key, save_key
from farm.task import sign_task
from tests.unit.builders.test_failure_kind import (
    COORDINATOR,
    KEY,
    FakeEngine,
    _outcome,
    _register,
    _task,
)
from tests.unit.builders.test_tasks_store import FlakyRedis

OTHER = generate_key()


def _forbidden(*_args: object) -> None:
    raise AssertionError("a refused task was built")


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (lambda: _task().model_dump(mode="json"), "not signed"),
        (lambda: sign_task(_task(), OTHER), "not signed by coordinator key"),
        (
            lambda: sign_task(_task().model_copy(update={"builder_id": OTHER.keyid}), COORDINATOR),
            "addressed to builder",
        ),
    ],
    ids=["unsigned", "another key", "another builder"],
)
def test_a_refused_task_builds_nothing_and_says_why(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    make: Any,
    why: str,
) -> None:
    monkeypatch.setattr(tasks_module, "execute", _forbidden)
    client, delivered = FlakyRedis(), []
    engine = FakeEngine()
    build = _register(tmp_path, engine, client, delivered)
    with caplog.at_level(logging.WARNING, "builders.tasks"), pytest.raises(TaskRefusedError):
        build.run(make())
    assert delivered == [] and client.data == {} and engine.pings == 0
    (line,) = [r for r in caplog.records if "refused" in r.getMessage()]
    assert line.levelno == logging.WARNING
    message = line.getMessage()
    assert why in message and "build-0001" in message and KEY.keyid[:12] in message


def test_a_result_in_redis_that_the_builder_did_not_sign_is_not_returned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = _task()
    key = result_key(task.build_id, task.builder_id)
    forged = json.dumps({"envelope": {"payload": "", "payloadType": "x", "signatures": []}})
    built: list[str] = []

    def execute(t: Any, r: Any, c: Any) -> Any:
        built.append(t.build_id)
        return _outcome(t, "build")

    monkeypatch.setattr(tasks_module, "execute", execute)
    client, delivered = FlakyRedis(stored={key: forged}), []
    build = _register(tmp_path, FakeEngine(), client, delivered)
    result = build.run(sign_task(task, COORDINATOR))
    assert built == [task.build_id]  # built, not answered from the forged key
    assert json.loads(client.data[key]) == result and result["envelope"] == delivered[0]
    # Asked again, the builder's own stored result is returned without building.
    again = build.run(sign_task(task, COORDINATOR))
    assert again == result and built == [task.build_id]


def test_a_builder_without_a_coordinator_key_does_not_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FARM_BUILDER_COORDINATOR_KEY", raising=False)
    save_key(generate_key(), tmp_path / "key.pem")
    settings = BuilderSettings(home=tmp_path, redis_url="redis://127.0.0.1:1/0")
    with pytest.raises(ConfigError, match="FARM_BUILDER_COORDINATOR_KEY"):
        run_worker(settings)
