"""Whose failure a failed build is, and what the build task does about it (ADR 37).

A failure of this host's machinery (its Docker Engine failed or does not answer) is
signed ``infrastructure``; everything else is the build's own. A task whose engine does
not answer is given back to its queue, not failed; an infrastructure failure is
delivered to the coordinator but not stored for idempotency, so the task sent again
builds again. Fake engine and fake Redis; no Docker.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import docker
import pytest
import requests
from celery import Celery
from celery.exceptions import Reject

from builders import tasks as tasks_module
from builders.build import BuildContext, BuildOutcome, failure_kind_of
from builders.errors import EngineError, FetchError, OutputError, SandboxError
from builders.fetch import Fetcher
from builders.runner import engine_answers
from builders.store import ContentStore
from builders.tasks import register_build_task, result_key
from farm.errors import FarmError
from farm.keys import generate_key
from farm.recipe import parse_recipe
from farm.result import BuildPredicate, envelope_payload, parse_statement, sign_result
from farm.task import BuildTask, sign_task
from tests.unit.builders.test_tasks_store import FlakyRedis
from tests.unit.farm.conftest import BASE_RECIPE

KEY = generate_key()
#: The coordinator key the builder under test trusts (ADR 41).
COORDINATOR = generate_key()


class FakeEngine:
    """Answers ``ping`` once it has been asked ``down`` times (forever down with -1)."""

    def __init__(self, down: int = 0, error: Exception | None = None) -> None:
        self.down = down
        self.pings = 0
        self.error = error or docker.errors.DockerException(
            "Error while fetching server API version: ('Connection aborted.', "
            "FileNotFoundError(2, 'No such file or directory'))"
        )

    def ping(self) -> bool:
        self.pings += 1
        if self.down < 0 or self.pings <= self.down:
            raise self.error
        return True


UP, DOWN = FakeEngine(), FakeEngine(down=-1)


@pytest.mark.parametrize(
    ("exc", "engine", "kind"),
    [
        (EngineError("build container failed: connection refused"), UP, "infrastructure"),
        (EngineError("cannot list containers"), DOWN, "infrastructure"),
        (SandboxError("the build command did not start"), UP, "build"),
        (SandboxError("the build command did not start"), DOWN, "infrastructure"),
        (FetchError("sha256 mismatch"), UP, "build"),
        (OutputError("/out/x escapes"), UP, "build"),
        (FarmError("anything"), DOWN, "infrastructure"),
        (None, UP, "build"),  # the command exited non-zero, the engine is fine
        (None, DOWN, "infrastructure"),  # exit 143: killed by an engine that was stopping
    ],
)
def test_whose_failure_it_is(exc: FarmError | None, engine: FakeEngine, kind: str) -> None:
    assert failure_kind_of(exc, engine) == kind  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "error", [docker.errors.APIError("500 Server Error"), requests.ConnectionError("refused")]
)
def test_an_engine_is_asked_again_within_the_bound(error: Exception) -> None:
    coming_back = FakeEngine(down=2, error=error)
    assert engine_answers(coming_back, within=1.0, pause=0.01)  # type: ignore[arg-type]
    assert coming_back.pings == 3
    gone = FakeEngine(down=-1, error=error)
    assert not engine_answers(gone, within=0.05, pause=0.01)  # type: ignore[arg-type]
    assert not engine_answers(FakeEngine(down=1), within=0)  # type: ignore[arg-type]


# -- the task ---------------------------------------------------------------------------


def _task() -> BuildTask:
    recipe = parse_recipe(BASE_RECIPE, "demo")
    return BuildTask.create(recipe, "amd64", KEY.keyid, "build-0001")


def _outcome(task: BuildTask, kind: str | None) -> BuildOutcome:
    recipe = task.load_recipe()
    predicate = BuildPredicate(
        build_id=task.build_id,
        recipe_digest=task.recipe_digest,
        recipe_name=recipe.name,
        recipe_version=recipe.version,
        image_digest=recipe.image,
        arch=task.arch,
        builder_id=KEY.keyid,
        started_at="2026-01-01T00:00:00Z",  # type: ignore[arg-type]
        finished_at="2026-01-01T00:00:01Z",  # type: ignore[arg-type]
        status="failed",
        exit_code=None,
        error="cannot list containers: connection refused",
        failure_kind=kind,  # type: ignore[arg-type]
        log_sha256="3" * 64,
    )
    return BuildOutcome(
        envelope=sign_result(predicate, KEY),
        log=b"",
        infrastructure_failure=predicate.infrastructure_failure,
    )


def _register(
    tmp_path: Path, engine: FakeEngine, client: FlakyRedis, delivered: list[dict[str, Any]]
) -> Any:
    ctx = BuildContext(
        key=KEY,
        docker=engine,  # type: ignore[arg-type]
        fetcher=Fetcher(tmp_path / "cache"),
        store=ContentStore(tmp_path / "store"),
        work_root=tmp_path / "work",
        visibility_timeout=7200,
    )
    app = Celery("test-failure-kind", set_as_current=False)
    return register_build_task(
        app,
        ctx,
        client,  # type: ignore[arg-type]
        COORDINATOR.public,
        deliver=delivered.append,
        engine_wait=0.05,
    )


@pytest.mark.parametrize(("kind", "stored"), [("infrastructure", False), ("build", True)])
def test_an_infrastructure_failure_is_delivered_but_not_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, stored: bool
) -> None:
    task = _task()
    monkeypatch.setattr(tasks_module, "execute", lambda t, r, c: _outcome(t, kind))
    client, delivered = FlakyRedis(), []
    build = _register(tmp_path, FakeEngine(), client, delivered)
    result = build.run(sign_task(task, COORDINATOR))
    assert len(delivered) == 1
    predicate = parse_statement(envelope_payload(delivered[0])).predicate
    assert predicate.failure_kind == kind and result["envelope"] == delivered[0]
    assert (result_key(task.build_id, task.builder_id) in client.data) is stored
    if stored:
        assert json.loads(client.data[result_key(task.build_id, task.builder_id)]) == result


def test_a_task_whose_engine_does_not_answer_is_given_back_not_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[str] = []
    monkeypatch.setattr(tasks_module, "execute", lambda t, r, c: ran.append("built"))
    client, delivered = FlakyRedis(), []
    engine = FakeEngine(down=-1)
    build = _register(tmp_path, engine, client, delivered)
    with pytest.raises(Reject) as caught:
        build.run(sign_task(_task(), COORDINATOR))
    assert caught.value.requeue is True
    assert engine.pings >= 1 and ran == [] and delivered == [] and client.data == {}
