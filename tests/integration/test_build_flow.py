"""Three real builder workers, real Redis, real Docker: do they agree, and is it shown?"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from farm.cluster import LocalCluster
from farm.recipe import load_recipe
from tests.integration.conftest import REPO, write_recipe

pytestmark = [pytest.mark.docker, pytest.mark.redis, pytest.mark.image, pytest.mark.slow]


def farm_build(
    cluster: LocalCluster, recipe: Path, tmp_path: Path, *extra: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    out = tmp_path / "report.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "farm.cli",
            "build",
            str(recipe),
            "--builders",
            "3",
            "--redis-url",
            cluster.redis.url,
            "--json",
            str(out),
            "--coordinator-key",
            str(cluster.coordinator_key),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200", "HOME": str(tmp_path)},
    )
    report = json.loads(out.read_text()) if out.exists() else {}
    return proc, report


def test_shipped_recipe_rebuilt_bit_for_bit_by_three_builders(
    cluster3: LocalCluster, tmp_path: Path
) -> None:
    recipe_path = REPO / "recipes" / "iniconfig" / "2.0.0.yaml"
    recipe = load_recipe(recipe_path)
    proc, report = farm_build(cluster3, recipe_path, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    arch = report["arches"]["amd64"]
    assert arch["verdict"] == "verified"
    digest_sets = [b["outputs"] for b in arch["builders"].values()]
    assert len(digest_sets) == 3 and all(d == digest_sets[0] for d in digest_sets)
    assert set(arch["builders"]) == {b.builder_id for b in cluster3.builders}
    assert "all 3 builders agree bit for bit" in proc.stdout
    # each built under its own variation (ADR 38), and signed what it was
    variations = [b["variation"] for b in arch["builders"].values()]
    assert len({v["hostname"] for v in variations}) == 3
    wheel = next(iter(digest_sets[0]))
    assert wheel.endswith(".whl")
    if recipe.upstream:
        assert arch["upstream"][wheel] in ("match", "differ")


def test_nondeterministic_recipe_disagreement_is_shown(
    cluster3: LocalCluster, builder_image: str, git_source: dict[str, str], tmp_path: Path
) -> None:
    recipe = write_recipe(
        tmp_path / "recipes",
        builder_image,
        git_source,
        "cp data.txt /out/same.txt\n"
        "date +%s%N > /out/stamp.txt\n"
        "head -c 16 /dev/urandom | od -An -tx1 > /out/random.txt\n",
        ["same.txt", "stamp.txt", "random.txt"],
    )
    proc, report = farm_build(cluster3, recipe, tmp_path)
    assert proc.returncode == 1, proc.stdout
    assert "amd64: disputed: 1/3 builders agree" in proc.stderr
    arch = report["arches"]["amd64"]
    assert arch["verdict"] == "disputed"
    outputs = [b["outputs"] for b in arch["builders"].values()]
    assert len({o["same.txt"] for o in outputs}) == 1
    assert len({o["stamp.txt"] for o in outputs}) == 3
    assert len({o["random.txt"] for o in outputs}) == 3
    table = proc.stdout
    same_row = next(line for line in table.splitlines() if "same.txt" in line)
    stamp_row = next(line for line in table.splitlines() if "stamp.txt" in line)
    assert same_row.count("✓") == 3
    assert stamp_row.count("✗") >= 2
    for builder in cluster3.builders:
        assert builder.builder_id[:12] in table


def test_failing_build_is_reported_with_its_reason(
    cluster3: LocalCluster, builder_image: str, git_source: dict[str, str], tmp_path: Path
) -> None:
    recipe = write_recipe(
        tmp_path / "recipes",
        builder_image,
        git_source,
        "echo trying the network\npython3 -c 'import urllib.request as u; u.urlopen(\"http://1.1.1.1\", timeout=3)'\n",
        ["never.txt"],
    )
    proc, report = farm_build(cluster3, recipe, tmp_path)
    assert proc.returncode == 1
    arch = report["arches"]["amd64"]
    assert arch["verdict"] == "failed"
    for b in arch["builders"].values():
        assert b["state"] == "FAILED"
        assert "exited with status" in b["error"]
    assert "Network is unreachable" in proc.stdout
    assert "failed: 0/3 builders agree" in proc.stderr or "no builder produced" in proc.stderr


def test_unknown_builder_count_is_a_clear_error(cluster3: LocalCluster, tmp_path: Path) -> None:
    recipe_path = REPO / "recipes" / "iniconfig" / "2.0.0.yaml"
    proc, _ = farm_build(cluster3, recipe_path, tmp_path, "--builders", "5")
    assert proc.returncode == 1
    assert "3 running builder(s) can build amd64, 5 needed" in proc.stderr


def test_architecture_a_builder_cannot_build_is_refused(
    cluster3: LocalCluster, builder_image: str, git_source: dict[str, str], tmp_path: Path
) -> None:
    import redis

    from farm.dispatch import collect, dispatch
    from farm.queue import make_celery
    from farm.registry import list_builders

    recipe_path = write_recipe(
        tmp_path / "recipes",
        builder_image,
        git_source,
        "cp data.txt /out/",
        ["data.txt"],
        architectures=["amd64", "s390x"],
    )
    # No running builder advertises s390x, so farm build refuses before queueing anything.
    proc, _ = farm_build(cluster3, recipe_path, tmp_path, "--arch", "s390x")
    assert proc.returncode == 1
    assert "0 running builder(s) can build s390x, 3 needed" in proc.stderr
    # A task sent to a builder anyway is refused by the builder, with a signed reason.
    running = list_builders(redis.Redis.from_url(cluster3.redis.url))
    assert all("s390x" not in b.arches for b in running)
    app = make_celery(cluster3.redis.url)
    runs = dispatch(
        app,
        load_recipe(recipe_path),
        "s390x",
        running[:1],
        "arch-refusal-1",
        cluster3.coordinator(),
    )
    collect(runs, timeout=60)
    assert runs[0].state == "FAILED"
    assert runs[0].error is not None and "cannot build s390x" in runs[0].error
