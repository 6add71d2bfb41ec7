"""Two builders build one shipped recipe in the real builder image, each under its own
variation, through the builders' own path (``builders.build.execute``): the outputs
agree, and each signed result says what its build ran under."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from builders.build import BuildContext, execute
from builders.fetch import Fetcher
from builders.store import ContentStore
from builders.variation import derive
from farm.keys import KeyPair, generate_key
from farm.recipe import load_recipe
from farm.result import envelope_payload, verify_result
from farm.task import BuildTask
from tests.integration.conftest import REPO

pytestmark = [pytest.mark.docker, pytest.mark.image, pytest.mark.slow]

# No build dependencies, only its sdist from PyPI, and it matches upstream's wheel.
FLIT = load_recipe(REPO / "recipes" / "flit_core" / "3.10.1.yaml")


@pytest.fixture(scope="module")
def fetch_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("fetch-cache")


def _differing(a: KeyPair, b: KeyPair) -> str:
    """A build id under which the two builders differ in umask, CPU count and domain."""
    for i in range(10_000):
        build_id = f"variation-{i:05d}"
        va, vb = derive(a.keyid, build_id), derive(b.keyid, build_id)
        if va.umask != vb.umask and va.cpus != vb.cpus and va.domainname != vb.domainname:
            return build_id
    raise AssertionError("no build id separates the two builders")


def _build(
    key: KeyPair,
    build_id: str,
    client: docker.DockerClient,
    cache: Path,
    root: Path,
    *,
    vary: bool = True,
) -> dict[str, object]:
    task = BuildTask.create(FLIT, "amd64", key.keyid, build_id)
    with Fetcher(cache) as fetcher:
        ctx = BuildContext(
            key=key,
            docker=client,
            fetcher=fetcher,
            store=ContentStore(root / "store"),
            work_root=root / "work",
            visibility_timeout=3600,
            vary=vary,
        )
        return execute(task, FLIT, ctx).envelope


def test_two_variations_of_a_shipped_recipe_agree_and_are_signed(
    docker_client: docker.DockerClient, builder_image: str, fetch_cache: Path, tmp_path: Path
) -> None:
    assert FLIT.image == builder_image
    a, b = generate_key(), generate_key()
    build_id = _differing(a, b)
    results = [
        verify_result(
            _build(k, build_id, docker_client, fetch_cache, tmp_path / k.keyid[:8]), [k.public]
        )
        for k in (a, b)
    ]
    for key, result in zip((a, b), results, strict=True):
        p = result.predicate
        assert p.status == "succeeded", p.error
        drawn = derive(key.keyid, build_id)
        v = p.variation
        assert v is not None
        assert (v.hostname, v.domainname, v.umask) == (
            drawn.hostname,
            drawn.domainname,
            f"{drawn.umask:04o}",
        )
        host = len(os.sched_getaffinity(0))
        assert v.cpus == (host if drawn.cpus is None else 1)
        assert v.lang is None and v.clock_offset_s == 0  # pinned; no libfaketime in the image
        assert "locale: pinned by the recipe (LANG, LC_ALL)" in v.unvaried
        assert "umask: the recipe's command sets its own, which wins" in v.unvaried
        assert any(line.startswith("directory order: not varied") for line in v.unvaried)
    va, vb = (r.predicate.variation for r in results)
    assert va != vb
    assert results[0].digest_set() == results[1].digest_set()
    wheel = "flit_core-3.10.1-py3-none-any.whl"
    assert results[0].digest_set()[wheel] == FLIT.upstream[0].sha256
    leftover = docker_client.containers.list(
        all=True, filters={"label": f"farm.build-id={build_id}"}
    )
    assert leftover == []


def test_a_builder_with_variation_off_signs_none_and_still_agrees(
    docker_client: docker.DockerClient, builder_image: str, fetch_cache: Path, tmp_path: Path
) -> None:
    key = generate_key()
    envelope = _build(key, "variation-off", docker_client, fetch_cache, tmp_path, vary=False)
    result = verify_result(envelope, [key.public])
    assert result.predicate.status == "succeeded", result.predicate.error
    assert result.predicate.variation is None
    # signed as builders signed before variation existed: no "variation" key at all
    assert "variation" not in json.loads(envelope_payload(envelope))["predicate"]
    wheel = "flit_core-3.10.1-py3-none-any.whl"
    assert result.digest_set() == {wheel: FLIT.upstream[0].sha256}
