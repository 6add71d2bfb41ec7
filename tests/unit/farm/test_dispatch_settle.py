"""Only a builder's signed result ends a run of ``farm build`` (ADR 41).

The result backend is the shared broker: a FAILURE state, or a SUCCESS that does not
carry this builder's signed result for this task, is what anyone with the Redis URL can
write. Neither ends the run; the builder's signed result still does when it comes.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from farm.dispatch import BuilderRun, _settle
from farm.registry import BuilderInfo
from tests.unit.builders.test_failure_kind import KEY, _outcome, _task

NOW = datetime(2026, 1, 1, tzinfo=UTC)
INFO = BuilderInfo(
    builder_id=KEY.keyid,
    public_key=KEY.public_dict(),
    arches=("amd64",),
    hostname="b1",
    pid=1,
    queue="farm.builder.x",
    started_at=NOW,
    seen_at=NOW,
)


class FakeResult:
    """What Celery's AsyncResult reads from the backend: a state and a value."""

    def __init__(self, state: str, result: Any) -> None:
        self.state, self.result = state, result


def _run(state: str, result: Any) -> BuilderRun:
    return BuilderRun(builder=INFO, task=_task(), async_result=FakeResult(state, result))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("state", "result"),
    [
        ("FAILURE", RuntimeError("the attacker says this attempt failed")),
        ("SUCCESS", {"log_tail": "no envelope"}),
        ("SUCCESS", {"envelope": {"payload": "", "payloadType": "x", "signatures": []}}),
        ("SUCCESS", "done"),
    ],
    ids=["failure", "success without envelope", "success with a forged envelope", "junk"],
)
def test_an_unsigned_state_ends_no_run(
    state: str, result: Any, caplog: pytest.LogCaptureFixture
) -> None:
    run = _run(state, result)
    with caplog.at_level(logging.WARNING, "farm.dispatch"):
        _settle(run)
        _settle(run)
    assert not run.done and run.result is None
    assert run.error is not None and "no signed result yet" in run.error
    (line,) = [r for r in caplog.records if "ignored" in r.getMessage()]  # logged once
    assert run.task.build_id in line.getMessage() and KEY.keyid[:12] in line.getMessage()


def test_the_builders_signed_result_ends_the_run() -> None:
    task = _task()
    signed = _outcome(task, "build").to_json()
    run = _run("SUCCESS", signed)
    _settle(run)
    assert run.done and run.state == "FAILED" and run.result is not None
    # A signed result for another build is not this run's: refused as no word.
    other = _run("SUCCESS", _outcome(_task().model_copy(update={"build_id": "build-0002"}),
                                     "build").to_json())  # fmt: skip
    _settle(other)
    assert not other.done
