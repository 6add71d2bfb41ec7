"""The recipe model: validation, normalization and the digest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from farm.errors import RecipeError
from farm.recipe import load_recipe, parse_recipe, parse_size


def test_valid_recipe_gets_defaults_and_digest(recipe_data: dict[str, Any]) -> None:
    r = parse_recipe(recipe_data)
    assert r.quorum == 3
    assert r.limits.timeout == 900
    assert r.digest.startswith("sha256:") and len(r.digest) == 71


def test_digest_ignores_key_order_and_spelling_of_sizes(recipe_data: dict[str, Any]) -> None:
    a = parse_recipe(recipe_data)
    reordered = dict(reversed(list(recipe_data.items())))
    reordered["limits"] = {"memory": "2GiB"}
    b = parse_recipe(reordered)
    assert a.digest == b.digest


def test_digest_changes_with_any_meaningful_field(recipe_data: dict[str, Any]) -> None:
    a = parse_recipe(recipe_data)
    recipe_data["build"]["env"]["SOURCE_DATE_EPOCH"] = "1700000001"
    assert parse_recipe(recipe_data).digest != a.digest


@pytest.mark.parametrize(
    ("path", "value", "needle"),
    [
        (("source", "commit"), "main", "source.git.commit"),
        (("source", "commit"), "0123456", "source.git.commit"),
        (("image",), "farm-builder:latest", "image"),
        (("architectures",), ["amd64", "vax"], "unknown architecture"),
        (("build", "env"), {"TZ": "UTC"}, "SOURCE_DATE_EPOCH"),
        (("build", "env"), {"TZ": "UTC", "SOURCE_DATE_EPOCH": "yesterday"}, "whole number"),
        (
            ("build", "env"),
            {"TZ": "UTC", "SOURCE_DATE_EPOCH": "1", "PATH": "/x"},
            "set by the builder",
        ),
        (("outputs",), [{"path": "../etc/passwd"}], "inside /out"),
        (("outputs",), [{"path": "/etc/passwd"}], "inside /out"),
        (("limits",), {"memory": "lots"}, "not a size"),
        (("quorum",), 0, "quorum"),
        (("extra_field",), 1, "extra_field"),
    ],
)
def test_invalid_recipes_are_refused_with_the_field(
    recipe_data: dict[str, Any], path: tuple[str, ...], value: object, needle: str
) -> None:
    target = recipe_data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(RecipeError, match=needle):
        parse_recipe(recipe_data)


def test_dependency_without_hash_is_refused(recipe_data: dict[str, Any]) -> None:
    recipe_data["build"]["dependencies"] = [{"name": "setuptools", "version": "80.0.0"}]
    with pytest.raises(RecipeError, match="sha256"):
        parse_recipe(recipe_data)


@pytest.mark.parametrize(
    ("text", "size"), [(1, 1), ("1KiB", 1024), ("2 MB", 2_000_000), ("1gib", 2**30), ("7", 7)]
)
def test_parse_size(text: object, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", [0, -1, "1 parsec", True, "", 1.5])
def test_parse_size_refuses(bad: object) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(bad)


def test_load_recipe_reports_bad_files(tmp_path: Path, recipe_data: dict[str, Any]) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(RecipeError, match="cannot read"):
        load_recipe(missing)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(bad)
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(recipe_data))
    assert load_recipe(good).name == "demo"


def test_shipped_recipes_are_valid() -> None:
    root = Path(__file__).resolve().parents[3] / "recipes"
    files = sorted(root.rglob("*.yaml"))
    # An empty or misplaced recipes/ must fail here, not pass vacuously: farm up and the
    # benches take shipped recipes through the farm.
    assert len(files) >= 5, f"expected the shipped recipes under {root}, found {len(files)}"
    for f in files:
        recipe = load_recipe(f)
        assert f.relative_to(root).as_posix() == f"{recipe.name}/{recipe.version}.yaml"


#: The digest of conftest's BASE_RECIPE before ``images`` existed: it must not move.
BASE_DIGEST = "sha256:5e95b7d0bd9b39f6c1408cd07c48f8bccad0baf74c011328d08523f97cf959d5"
AMD = "sha256:" + "ab" * 32
ARM = "sha256:" + "cd" * 32


def test_a_recipe_without_images_keeps_its_digest(recipe_data: dict[str, Any]) -> None:
    assert parse_recipe(recipe_data).digest == BASE_DIGEST
    assert parse_recipe({**recipe_data, "images": {}}).digest == BASE_DIGEST
    assert "images" not in parse_recipe(recipe_data).canonical_form()


def test_image_for_is_the_arch_s_pin_or_the_default(recipe_data: dict[str, Any]) -> None:
    r = parse_recipe({**recipe_data, "architectures": ["arm64", "amd64"], "images": {"arm64": ARM}})
    assert (r.image_for("amd64"), r.image_for("arm64")) == (AMD, ARM)
    assert r.canonical_form()["images"] == {"arm64": ARM}
    assert r.digest != BASE_DIGEST
    # The order images are written in does not matter.
    both = {"arm64": ARM, "amd64": "sha256:" + "ef" * 32}
    one = parse_recipe({**recipe_data, "architectures": ["amd64", "arm64"], "images": both})
    other = parse_recipe(
        {**recipe_data, "architectures": ["amd64", "arm64"], "images": dict(reversed(both.items()))}
    )
    assert one.digest == other.digest and one.image_for("amd64") == "sha256:" + "ef" * 32


@pytest.mark.parametrize(
    ("arches", "images", "needle"),
    [
        (["amd64"], {"arm64": ARM}, "images.arm64: arm64 is not one of the recipe's"),
        (["amd64", "arm64"], {"arm64": AMD}, "images.arm64: arm64 and amd64 both pin"),
        (["amd64", "arm64"], {"amd64": ARM, "arm64": ARM}, "both pin"),
        (["amd64", "arm64"], {"arm64": "debian:bookworm"}, "images.arm64"),
        (["amd64", "arm64"], {"arm64": "sha256:" + "0" * 63}, "images.arm64"),
    ],
)
def test_bad_images_are_refused(
    recipe_data: dict[str, Any], arches: list[str], images: dict[str, str], needle: str
) -> None:
    with pytest.raises(RecipeError, match=needle):
        parse_recipe({**recipe_data, "architectures": arches, "images": images})


AMD_WHEEL = "demo-1.0-cp311-cp311-linux_x86_64.whl"
ARM_WHEEL = "demo-1.0-cp311-cp311-linux_aarch64.whl"


def _per_arch(recipe_data: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A two-architecture recipe with a compiled wheel per architecture and a shared file."""
    return {
        **recipe_data,
        "architectures": ["amd64", "arm64"],
        "images": {"arm64": ARM},
        "outputs": [
            {"path": "hello.txt"},
            {"path": AMD_WHEEL, "arch": "amd64"},
            {"path": ARM_WHEEL, "arch": "arm64"},
        ],
        **extra,
    }


def test_outputs_and_upstream_per_architecture(recipe_data: dict[str, Any]) -> None:
    refs = [
        {"output": AMD_WHEEL, "sha256": "a" * 64},
        {"output": ARM_WHEEL, "sha256": "b" * 64},
        {"output": "hello.txt", "sha256": "c" * 64},
        {"output": "stray.whl", "sha256": "d" * 64},  # no output's: every build's to miss
    ]
    r = parse_recipe(_per_arch(recipe_data, upstream=refs))
    assert [o.path for o in r.outputs_for("amd64")] == ["hello.txt", AMD_WHEEL]
    assert [o.path for o in r.outputs_for("arm64")] == ["hello.txt", ARM_WHEEL]
    assert [u.output for u in r.upstream_for("amd64")] == [AMD_WHEEL, "hello.txt", "stray.whl"]
    assert [u.output for u in r.upstream_for("arm64")] == [ARM_WHEEL, "hello.txt", "stray.whl"]
    assert r.canonical_form()["outputs"] == [
        {"path": "hello.txt"},
        {"path": AMD_WHEEL, "arch": "amd64"},
        {"path": ARM_WHEEL, "arch": "arm64"},
    ]


def test_an_output_of_every_architecture_keeps_the_digest(recipe_data: dict[str, Any]) -> None:
    written = {**recipe_data, "outputs": [{"path": "hello.txt", "arch": None}]}
    assert parse_recipe(written).digest == BASE_DIGEST
    r = parse_recipe(recipe_data)
    assert r.outputs_for("amd64") == r.outputs
    assert (
        parse_recipe({**recipe_data, "outputs": [{"path": "hello.txt", "arch": "amd64"}]}).digest
        != BASE_DIGEST
    )


@pytest.mark.parametrize(
    ("outputs", "needle"),
    [
        (
            [{"path": ARM_WHEEL, "arch": "s390x"}, {"path": AMD_WHEEL}],
            "outputs.0.arch: s390x is not",
        ),
        ([{"path": AMD_WHEEL, "arch": "amd64"}], "outputs: none is declared for arm64"),
        ([{"path": AMD_WHEEL, "arch": "x86_64"}], "outputs.0.arch: x86_64 is not"),
    ],
)
def test_bad_outputs_per_architecture_are_refused(
    recipe_data: dict[str, Any], outputs: list[dict[str, str]], needle: str
) -> None:
    with pytest.raises(RecipeError, match=needle):
        parse_recipe(_per_arch(recipe_data, outputs=outputs))


def test_the_shipped_compiled_recipe_has_a_wheel_per_architecture() -> None:
    root = Path(__file__).resolve().parents[3] / "recipes"
    r = load_recipe(root / "markupsafe" / "3.0.2.yaml")
    assert r.architectures == ("amd64", "arm64") and r.quorum == 3
    assert [o.path for o in r.outputs_for("amd64")] == [
        "MarkupSafe-3.0.2-cp311-cp311-linux_x86_64.whl"
    ]
    assert [o.path for o in r.outputs_for("arm64")] == [
        "MarkupSafe-3.0.2-cp311-cp311-linux_aarch64.whl"
    ]
    for arch in r.architectures:
        (ref,) = r.upstream_for(arch)
        assert ref.output == r.outputs_for(arch)[0].path
