"""`farm recipe new` against the real PyPI and real hermetic rebuilds in the builder image.

Each test downloads a small release's sdist and wheel from pypi.org, lets the command
infer and rebuild, then rebuilds the recipe it wrote, independently, and checks the
output is upstream's wheel bit for bit.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from builders.local_build import build_locally
from farm.recipe import load_recipe
from farm.recipe_lint import lint_paths

pytestmark = [pytest.mark.network, pytest.mark.docker, pytest.mark.image, pytest.mark.slow]

FARM = Path(sys.executable).with_name("farm")


def _farm(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(FARM), *argv], capture_output=True, text=True, timeout=900, check=False
    )


@pytest.mark.parametrize(
    ("spec", "backend"),
    [
        ("mdurl==0.1.2", "flit_core"),  # flit 3.7.1, SOURCE_DATE_EPOCH unset
        ("soupsieve==2.6", "hatchling"),  # hatchling 1.25.0, its 2020-02-02 default
    ],
)
def test_inferred_recipe_rebuilds_upstreams_wheel(
    tmp_path: Path, builder_image: str, spec: str, backend: str
) -> None:
    name, version = spec.split("==")
    out, cache = tmp_path / "recipes", tmp_path / "cache"
    proc = _farm(
        "recipe", "new", spec, "--out", str(out), "--cache", str(cache), "--image", builder_image
    )
    assert proc.returncode == 0, proc.stderr
    assert "matches upstream" in proc.stderr
    path = out / name / f"{version}.yaml"
    recipes, problems = lint_paths([out])
    assert problems == [] and len(recipes) == 1
    recipe = load_recipe(path)
    assert recipe.image == builder_image
    assert recipe.reproducibility is not None
    assert recipe.reproducibility.startswith("Matches upstream bit for bit")
    assert backend in recipe.reproducibility
    assert all(len(d.sha256) == 64 for d in recipe.build.dependencies)
    # Rebuild what was written, from scratch (a fresh fetch cache): upstream's bytes.
    done = build_locally(recipe, tmp_path / "verify", fetch_cache=tmp_path / "cache2")
    assert done.ok, done.failure
    upstream = recipe.upstream[0]
    assert done.digests == {upstream.output: f"sha256:{upstream.sha256}"}


def test_no_match_writes_nothing_unless_accepted(tmp_path: Path, builder_image: str) -> None:
    # six 1.17.0's wheel (setuptools 75.6.0, built without SOURCE_DATE_EPOCH) stamps its
    # generated .dist-info files with the moment of upstream's build: no rebuild has it.
    out, cache = tmp_path / "recipes", tmp_path / "cache"
    common = ["--out", str(out), "--cache", str(cache), "--image", builder_image]
    refused = _farm("recipe", "new", "six==1.17.0", "--max-attempts", "1", *common)
    assert refused.returncode == 1
    assert "no candidate matched upstream's wheel" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not out.exists()
    accepted = _farm(
        "recipe", "new", "six==1.17.0", "--max-attempts", "1", "--accept-differs", *common
    )
    assert accepted.returncode == 0, accepted.stderr
    recipe = load_recipe(out / "six" / "1.17.0.yaml")
    assert recipe.reproducibility is not None
    assert recipe.reproducibility.startswith("Does NOT match upstream")
    assert "Closest attempt:" in recipe.reproducibility
    assert "members differ" in recipe.reproducibility


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("mdurl", "give one release as NAME==VERSION"),
        ("no-such-project-farm-test-x9q==1.0", "no such project"),
        ("mdurl==99.0", "no such release"),
        ("numpy==2.1.3", "platform-specific"),
    ],
)
def test_bad_requests_are_one_line_errors(
    tmp_path: Path, builder_image: str, spec: str, message: str
) -> None:
    proc = _farm(
        "recipe",
        "new",
        spec,
        "--out",
        str(tmp_path / "r"),
        "--cache",
        str(tmp_path / "c"),
        "--image",
        builder_image,
    )
    assert proc.returncode == 1
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "r").exists()
