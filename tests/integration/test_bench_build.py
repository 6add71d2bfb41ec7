"""``farm bench build`` times the very code ``farm build`` runs, with its arguments.

Both run for real (Redis, a builder worker, Docker); a spy on
:func:`farm.cli.build_cmd.run_builds` records how each called it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from farm.bench.build import bench_build
from farm.cli import build_cmd
from farm.cluster import local_cluster
from farm.dispatch import BuilderRun
from tests.integration.conftest import write_recipe

pytestmark = [
    pytest.mark.docker,
    pytest.mark.redis,
    pytest.mark.image,
    pytest.mark.slow,
    pytest.mark.cluster,
]


def test_bench_build_times_farm_builds_own_function_with_its_arguments(
    tmp_path: Path,
    builder_image: str,
    git_source: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    recipe_path = write_recipe(
        tmp_path / "recipes", builder_image, git_source, "cp data.txt /out/\n", ["data.txt"]
    )
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    run_builds = build_cmd.run_builds

    def spy(*args: Any, **kwargs: Any) -> list[BuilderRun]:
        calls.append((args, kwargs))
        return run_builds(*args, **kwargs)

    monkeypatch.setattr(build_cmd, "run_builds", spy)

    bench_build(recipe_path, runs=1, builders=1)
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"bare_s", "farm_s", "overhead_s", "paired_overhead_s", "target_s"} <= set(report)
    assert report["target_s"] >= 0.3
    bench_calls, calls[:] = list(calls), []
    assert len(bench_calls) == 2  # the warm-up round and the timed one

    with local_cluster(tmp_path / "cluster", 1) as cluster:
        cluster.coordinator()
        build_cmd.build(
            recipe_path,
            builders=1,
            redis_url=cluster.redis.url,
            coordinator_key=cluster.coordinator_key,
        )
    (cli_call,) = calls

    def how(call: tuple[tuple[Any, ...], dict[str, Any]]) -> tuple[Any, ...]:
        """Everything but the Celery app, the fresh build id and where the table goes."""
        (_app, recipe, arch, builders, _build_id, wait, _signer), kwargs = call
        return recipe.digest, arch, len(builders), wait, tuple(sorted(set(kwargs) - {"out"}))

    assert {how(c) for c in bench_calls} == {how(cli_call)}
