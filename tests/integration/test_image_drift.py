"""A recipe pinned to a builder image this host can no longer make (Debian moved on)."""

from __future__ import annotations

from pathlib import Path

import pytest

from farm.cli.up_cmd import DEFAULT_RECIPE, ensure_image, recipe_for_this_host
from farm.errors import ImageDriftError
from farm.recipe import load_recipe

GONE = "sha256:" + "0" * 64


def test_a_recipe_whose_image_drifted_is_re_pinned_only_in_a_local_copy(
    builder_image: str, tmp_path: Path
) -> None:
    shipped = load_recipe(DEFAULT_RECIPE)
    stale = tmp_path / "stale.yaml"
    stale.write_text(DEFAULT_RECIPE.read_text().replace(shipped.image, GONE))
    with pytest.raises(ImageDriftError, match=f"pins builder image {GONE} but this host built"):
        ensure_image(GONE)
    copy = recipe_for_this_host(stale, tmp_path / "work")
    assert copy != stale and copy.is_relative_to(tmp_path / "work")
    repinned = load_recipe(copy)
    assert repinned.image == builder_image
    assert repinned.model_copy(update={"image": GONE}) == load_recipe(stale)
    assert GONE in stale.read_text()  # the recipe itself is untouched
    # A recipe whose image is here is used as it is.
    current = tmp_path / "current.yaml"
    current.write_text(stale.read_text().replace(GONE, builder_image))
    assert recipe_for_this_host(current, tmp_path / "work") == current
