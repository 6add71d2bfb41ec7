"""Variations of a local build, and how the runner turns a CPU count into a cpuset."""

from __future__ import annotations

import os
from dataclasses import fields, replace
from pathlib import Path

import pytest

from builders.local_build import build_locally
from builders.runner import RunSpec, _cpu_quota
from builders.variation import VARIATION_A, VARIATION_B, Variation
from farm.recipe import Limits, parse_recipe
from tests.unit.farm.conftest import BASE_RECIPE


def test_the_pair_differs_in_every_field() -> None:
    a, b = Variation.pair()
    assert (a, b) == (VARIATION_A, VARIATION_B)
    assert all(getattr(a, f.name) != getattr(b, f.name) for f in fields(Variation))
    assert b.describe() == (
        "host farm-check-b, umask 077, clock +400d, 1 CPU, domain farm.invalid, LANG C"
    )
    assert a.describe() == "host farm-check-a, umask 022, clock real, all CPUs"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hostname": "Bad_Host"}, "not a lower-case DNS label"),
        ({"umask": 0o1000}, "between 000 and 777"),
        ({"cpus": 0.0}, "positive"),
    ],
)
def test_a_bad_variation_is_refused(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        replace(VARIATION_A, **change)  # type: ignore[arg-type]


def _spec(cpus: float | None, limit: float = 2.0) -> RunSpec:
    return RunSpec(
        image="sha256:" + "0" * 64,
        script="true",
        workdir="/src",
        env={},
        source_dir=Path("/nonexistent"),
        deps_dir=None,
        limits=Limits(cpus=limit),
        arch="amd64",
        labels={},
        cpus=cpus,
    )


def test_builders_get_no_cpuset_and_the_recipe_quota() -> None:
    host = float(os.cpu_count() or 1)
    assert _cpu_quota(_spec(None, 1.5)) == (min(1.5, host), None)


def test_a_cpu_variation_confines_the_build_and_never_raises_the_quota() -> None:
    first = min(os.sched_getaffinity(0))
    assert _cpu_quota(_spec(1.0)) == (1.0, str(first))
    quota, cpuset = _cpu_quota(_spec(64.0, limit=0.5))
    assert quota == 0.5  # the recipe's limit stays a limit
    assert cpuset is not None and len(cpuset.split(",")) == len(os.sched_getaffinity(0))


def test_a_recipe_for_another_architecture_is_a_failure_not_an_exception(tmp_path: Path) -> None:
    recipe = parse_recipe({**BASE_RECIPE, "architectures": ["s390x"]})
    result = build_locally(recipe, tmp_path / "w")
    assert not result.ok and result.outputs == {} and result.digests == {}
    assert result.failure is not None and "built for s390x" in result.failure


def test_a_work_directory_in_use_is_refused(tmp_path: Path) -> None:
    (tmp_path / "left-over").write_text("x")
    result = build_locally(parse_recipe(BASE_RECIPE), tmp_path)
    assert result.failure == f"work directory {tmp_path} is not empty"
    assert (tmp_path / "left-over").read_text() == "x"
