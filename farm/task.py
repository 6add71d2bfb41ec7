"""BuildTask: what the caller asks one builder to do, signed by the coordinator.

A task names the builder it is for, so the caller — not the queue — decides which
distinct hosts build. It carries the recipe's canonical form and digest; the builder
recomputes the digest before doing anything. A task is idempotent by
``(build_id, builder_id)``: asking twice gives the one result.

A task travels as a DSSE envelope (:data:`TASK_PAYLOAD_TYPE`) signed with the
coordinator's key (ADR 41): the payload is the task's canonical JSON, so build id,
builder id, architecture and recipe digest are all under the signature, and a task
for builder A put on builder B's queue names A and is refused by B. A builder checks
the envelope against the one coordinator key it is configured with
(:func:`verify_task`) and parses the task from the payload bytes as received, never
from a re-serialized copy. Anything else on its queue — an unsigned task, one signed by
another key, an altered payload, a task for another builder — is refused
(:class:`TaskRefusedError`) before any build.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import SSlibKey

from farm.canonical import canonical_json
from farm.errors import RecipeError, TaskRefusedError
from farm.keys import KeyPair
from farm.recipe import Recipe, parse_recipe

__all__ = [
    "BUILD_TASK_NAME",
    "TASK_PAYLOAD_TYPE",
    "BuildTask",
    "claimed_ids",
    "new_build_id",
    "queue_for",
    "sign_task",
    "verify_task",
]

#: DSSE payload type of a signed task: it cannot be taken for a result or an attestation.
TASK_PAYLOAD_TYPE = "application/vnd.farm.build-task+json"

#: Celery task name of a build; shared by the sender and the worker.
BUILD_TASK_NAME = "farm.build"


def new_build_id() -> str:
    """A fresh, unguessable build id."""
    return uuid.uuid4().hex


def queue_for(builder_id: str) -> str:
    """The Celery queue that only builder ``builder_id`` consumes."""
    return f"farm.builder.{builder_id}"


class BuildTask(BaseModel):
    """One build of one recipe on one architecture by one named builder."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    build_id: str = Field(pattern=r"^[0-9a-zA-Z_-]{8,64}$")
    builder_id: str = Field(pattern=r"^[0-9a-f]{64}$")
    arch: str
    recipe: dict[str, Any] = Field(description="The recipe's canonical form.")
    recipe_digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")

    @classmethod
    def create(cls, recipe: Recipe, arch: str, builder_id: str, build_id: str) -> BuildTask:
        """A task for ``recipe`` on ``arch`` by ``builder_id``."""
        if arch not in recipe.architectures:
            raise RecipeError(f"{recipe.label} is not built for {arch}")
        return cls(
            build_id=build_id,
            builder_id=builder_id,
            arch=arch,
            recipe=recipe.canonical_form(),
            recipe_digest=recipe.digest,
        )

    def load_recipe(self) -> Recipe:
        """The recipe, re-validated; raise :class:`RecipeError` unless it matches the digest."""
        recipe = parse_recipe(self.recipe, f"task {self.build_id}")
        if recipe.digest != self.recipe_digest:
            raise RecipeError(
                f"task {self.build_id}: recipe digest {recipe.digest} does not match "
                f"the task's {self.recipe_digest}"
            )
        return recipe


def sign_task(task: BuildTask, key: KeyPair) -> dict[str, Any]:
    """The queue message of ``task``: ``{"envelope": <DSSE envelope>}``, signed with
    ``key`` (the coordinator's) over the task's canonical JSON."""
    payload = canonical_json(task.model_dump(mode="json"))
    envelope = Envelope(payload=payload, payload_type=TASK_PAYLOAD_TYPE, signatures={})
    envelope.sign(key.signer)
    return {"envelope": envelope.to_dict()}


def claimed_ids(message: object) -> tuple[str, str]:
    """The build id and builder id a queue message claims, unverified, for log lines
    about a refused task ("?" where it names none)."""
    value: object = message
    if isinstance(message, dict) and isinstance(message.get("envelope"), dict):
        try:
            value = json.loads(base64.b64decode(message["envelope"].get("payload", "")))
        except (ValueError, TypeError, binascii.Error):
            value = None
    if not isinstance(value, dict):
        return "?", "?"
    return str(value.get("build_id", "?"))[:64], str(value.get("builder_id", "?"))[:12]


def verify_task(message: object, coordinator: SSlibKey, builder_id: str) -> BuildTask:
    """The task in a queue message, once it holds: a DSSE envelope of
    :data:`TASK_PAYLOAD_TYPE` with a valid signature by ``coordinator``, whose payload
    is a well-formed task for ``builder_id``.

    Raises :class:`TaskRefusedError` saying which of these does not hold."""
    if not isinstance(message, dict) or not isinstance(message.get("envelope"), dict):
        raise TaskRefusedError("task is not signed (no envelope)")
    try:
        # from_dict consumes what it reads; keep the message as received.
        envelope = Envelope.from_dict(copy.deepcopy(message["envelope"]))
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise TaskRefusedError(f"task envelope is malformed: {exc}") from None
    if envelope.payload_type != TASK_PAYLOAD_TYPE:
        raise TaskRefusedError(f"task envelope has payload type {envelope.payload_type!r}")
    try:
        envelope.verify([coordinator], 1)
    except VerificationError:
        keyids = ", ".join(sorted(str(s.keyid)[:12] for s in envelope.signatures.values()))
        raise TaskRefusedError(
            f"task is not signed by coordinator key {str(coordinator.keyid)[:12]} "
            f"(signed by: {keyids or 'no one'}), or its payload was altered"
        ) from None
    try:
        task = BuildTask.model_validate_json(envelope.payload)
    except ValidationError as exc:
        raise TaskRefusedError(f"signed task is malformed: {exc.errors()[0]['msg']}") from None
    if task.builder_id != builder_id:
        raise TaskRefusedError(
            f"task is addressed to builder {task.builder_id[:12]}, not to {builder_id[:12]}"
        )
    return task
