"""BuildTask: what the caller asks one builder to do.

A task names the builder it is for, so the caller — not the queue — decides which
distinct hosts build. It carries the recipe's canonical form and digest; the builder
recomputes the digest before doing anything. A task is idempotent by
``(build_id, builder_id)``: asking twice gives the one result.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from farm.errors import RecipeError
from farm.recipe import Recipe, parse_recipe

__all__ = ["BUILD_TASK_NAME", "BuildTask", "new_build_id", "queue_for"]

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

    @classmethod
    def from_json(cls, data: object) -> BuildTask:
        """Validate a task received from the queue."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise RecipeError(f"malformed build task: {exc.errors()[0]['msg']}") from None
