"""The coordinator's loop, all real: `farm serve`, Redis, three builder workers, Docker.

Builders are enrolled (``farm builder enroll``) and approved before they start; they
deliver every signed result to the coordinator over HTTP (outputs to staging, then
the envelope), and the coordinator's scheduler dispatches, replaces and decides.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from farm.cluster import LocalCluster
from farm.coordinator.staging import Staging
from tests.integration.conftest import write_recipe
from tests.support.git import commit_all, git
from tests.support.served import Serve, served_farm, wait_for
from tests.support.served import farm_cli as _farm

pytestmark = [pytest.mark.docker, pytest.mark.redis, pytest.mark.image, pytest.mark.slow]

WEBHOOK_SECRET = "loop-test-webhook-secret"


@dataclass
class Loop:
    """A running farm: the coordinator's URL, an operator token, the cluster."""

    url: str
    token: str
    root: Path
    cluster: LocalCluster
    recipes_repo: Path
    http: httpx.Client
    serve: Serve

    def get(self, path: str) -> Any:
        response = self.http.get(path)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory, builder_image: str) -> Iterator[Loop]:
    root = tmp_path_factory.mktemp("loop")
    repo = root / "recipes-repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README").write_text("recipes\n")
    commit_all(repo, "init")
    with served_farm(
        root,
        label="loop test",
        serve_args=["--recipes-repo", str(repo), "--recipes-poll", "300"],
        serve_env={
            "FARM_COORDINATOR_RECIPES_CHECKOUT": str(root / "checkout"),
            "FARM_COORDINATOR_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "FARM_COORDINATOR_TIMEOUT_MARGIN": "5",
        },
    ) as farm:

        def all_seen() -> bool | None:
            seen = [b for b in farm.http.get("/v1/builders").json() if b["last_seen"]]
            return len(seen) == 3 or None

        wait_for("heartbeats of three builders", all_seen, 30)
        yield Loop(farm.url, farm.token, root, farm.cluster, repo, farm.http, farm.serve)


def _submit(loop: Loop, recipe: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return _farm(
        "submit", str(recipe), "--coordinator", loop.url, "--operator-token", loop.token,
        "--wait", "--timeout", "240", *extra,
    )  # fmt: skip


def _build_of(loop: Loop, name: str) -> dict[str, Any]:
    page = loop.get(f"/v1/builds?name={name}&limit=5")
    assert page["total"] >= 1, page
    build: dict[str, Any] = loop.get(f"/v1/builds/{page['items'][0]['id']}")
    return build


def test_submit_ends_verified_with_three_recorded_results(
    loop: Loop, builder_image: str, git_source: dict[str, str], tmp_path: Path
) -> None:
    recipe = write_recipe(
        tmp_path / "recipes", builder_image, git_source,
        "cp data.txt /out/data.txt\ncp hello.c /out/hello.c\n", ["data.txt", "hello.c"],
        name="loop-ok",
    )  # fmt: skip
    proc = _submit(loop, recipe)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "amd64: verified: 3/3 builders agree" in proc.stdout
    assert proc.stdout.count(": succeeded") >= 3  # per-builder progress lines

    build = _build_of(loop, "loop-ok")
    assert build["status"] == "verified" and build["retries"] == 0
    accepted = [r for r in build["results"] if r["status"] == "accepted"]
    assert {r["builder_id"] for r in accepted} == {b.builder_id for b in loop.cluster.builders}
    assert [a["state"] for a in build["attempts"]] == ["succeeded"] * 3
    assert all(r["log_sha256"] and r["error"] is None for r in accepted)
    staging = Staging(loop.root / "staging")
    digests = {(o["name"], o["sha256"]) for r in accepted for o in r["outputs"]}
    assert {name for name, _ in digests} == {"data.txt", "hello.c"} and len(digests) == 2
    for _, sha in digests:
        assert staging.verify(sha) > 0  # the staged bytes hash to the signed digest
    assert hashlib.sha256(b"some data\n").hexdigest() == dict(digests)["data.txt"]

    # The reads the command line shows.
    listed = _farm("builds", "--coordinator", loop.url, "--name", "loop-ok")
    assert listed.returncode == 0 and "verified" in listed.stdout, listed.stderr
    builders = _farm("builders", "--coordinator", loop.url)
    assert builders.returncode == 0 and builders.stdout.count("100%") >= 3, builders.stdout
    verified = loop.get("/v1/builds?verdict=verified")
    assert build["id"] in {b["id"] for b in verified["items"]}
    assert loop.get("/v1/builds?verdict=disputed&name=loop-ok")["total"] == 0


def test_non_reproducible_recipe_is_disputed_with_a_diffoscope_report(
    loop: Loop, builder_image: str, git_source: dict[str, str], tmp_path: Path
) -> None:
    recipe = write_recipe(
        tmp_path / "recipes", builder_image, git_source,
        "cp data.txt /out/same.txt\ndate +%s%N > /out/stamp.txt\n", ["same.txt", "stamp.txt"],
        name="loop-stamp",
    )  # fmt: skip
    proc = _submit(loop, recipe)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "amd64: disputed" in proc.stdout
    build = _build_of(loop, "loop-stamp")
    assert build["status"] == "disputed"
    diffs = wait_for(
        "diffoscope reports",
        lambda: loop.get(f"/v1/builds/{build['id']}/diffs") or None,
        120,
    )
    assert {d["output"] for d in diffs} == {"stamp.txt"}
    done = next(d for d in diffs if d["status"] == "done")
    html = loop.http.get(f"/v1/diffs/{done['id']}.html")
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert "stamp.txt" in html.text
    report = loop.http.get(f"/v1/diffs/{done['id']}.json")
    assert report.status_code == 200
    assert "unified_diff" in json.dumps(report.json()) or report.json().get("details")


def test_recipe_merged_into_the_followed_repository_is_built(
    loop: Loop, builder_image: str, git_source: dict[str, str]
) -> None:
    recipes = loop.recipes_repo / "recipes"
    write_recipe(
        recipes, builder_image, git_source, "cp data.txt /out/data.txt\n", ["data.txt"],
        name="followed", version="2.0",
    )  # fmt: skip
    bad = recipes / "broken" / "1.0.yaml"
    bad.parent.mkdir(parents=True)
    bad.write_text("name: broken\nversion: '1.0'\nimage: latest\n")
    commit_all(loop.recipes_repo, "add followed 2.0 and a broken recipe")

    body = b'{"ref": "refs/heads/main"}'
    unsigned = loop.http.post("/v1/hooks/push", content=body)
    assert unsigned.status_code == 401
    assert unsigned.json()["error"]["code"] == "unauthenticated"
    sig = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    hook = loop.http.post("/v1/hooks/push", content=body, headers={"X-Hub-Signature-256": sig})
    assert hook.status_code == 202, hook.text

    def followed_verdict() -> dict[str, Any] | None:
        rows = {r["path"]: r for r in loop.get("/v1/recipes")}
        row = rows.get("recipes/followed/2.0.yaml")
        return row if row is not None and row["last_verdict"] is not None else None

    row = wait_for("the followed recipe's verdict", followed_verdict, 180, 1.0)
    assert row["status"] == "scheduled" and row["last_verdict"] == "verified"
    assert row["digest"] and row["digest"].startswith("sha256:")
    build = loop.get(f"/v1/builds/{row['last_build_id']}")
    assert build["origin"].startswith("repo:recipes/followed/2.0.yaml@")
    assert len([r for r in build["results"] if r["status"] == "accepted"]) == 3
    broken = {r["path"]: r for r in loop.get("/v1/recipes")}["recipes/broken/1.0.yaml"]
    assert broken["status"] == "lint_failed" and broken["problems"]
    assert broken["last_build_id"] is None
    # A second push schedules nothing new: the digest already has a build.
    hook = loop.http.post("/v1/hooks/push", headers={"Authorization": f"Bearer {loop.token}"})
    assert hook.status_code == 202
    time.sleep(2)
    assert loop.get("/v1/builds?name=followed")["total"] == 1


def test_a_restarted_coordinator_resumes_its_builds(
    loop: Loop, builder_image: str, git_source: dict[str, str], tmp_path: Path
) -> None:
    recipe = write_recipe(
        tmp_path / "recipes", builder_image, git_source,
        "sleep 3\ncp data.txt /out/data.txt\n", ["data.txt"], name="loop-restart",
    )  # fmt: skip
    proc = _farm("submit", str(recipe), "--coordinator", loop.url, "--operator-token", loop.token)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    def running() -> dict[str, Any] | None:
        build = _build_of(loop, "loop-restart")
        return build if len(build["attempts"]) == 3 else None

    build = wait_for("three builders dispatched", running, 30, 0.2)
    loop.serve.stop(signal.SIGKILL)  # mid-build: no clean shutdown, nothing flushed on exit
    time.sleep(2)
    loop.serve.start(loop.http)

    def decided() -> dict[str, Any] | None:
        now: dict[str, Any] = loop.get(f"/v1/builds/{build['id']}")
        return now if now["verdict"] is not None else None

    final = wait_for("the verdict after the restart", decided, 120, 0.5)
    assert final["status"] == "verified", final["verdict"]
    assert [a["state"] for a in final["attempts"]] == ["succeeded"] * 3
    assert final["retries"] == 0


def test_a_builder_killed_mid_build_is_replaced(
    loop: Loop, builder_image: str, git_source: dict[str, str], tmp_path: Path
) -> None:
    # quorum 2 of 3 builders leaves one spare to replace the killed one.
    recipe = write_recipe(
        tmp_path / "recipes", builder_image, git_source,
        "sleep 4\ncp data.txt /out/data.txt\n", ["data.txt"],
        name="loop-kill", quorum=2, limits={"timeout": 15},
    )  # fmt: skip
    submit = subprocess.Popen(
        [
            sys.executable, "-m", "farm.cli", "submit", str(recipe), "--coordinator", loop.url,
            "--operator-token", loop.token, "--wait", "--timeout", "240",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip

    def dispatched() -> dict[str, Any] | None:
        page = loop.get("/v1/builds?name=loop-kill")
        if not page["items"]:
            return None
        build: dict[str, Any] = loop.get(f"/v1/builds/{page['items'][0]['id']}")
        return build if len(build["attempts"]) == 2 else None

    build = wait_for("two builders dispatched", dispatched, 30, 0.2)
    victim_id = build["attempts"][0]["builder_id"]
    victim = next(b for b in loop.cluster.builders if b.builder_id == victim_id)
    time.sleep(1.5)  # let it start the container
    loop.cluster.stop_builder(victim, signal.SIGKILL)
    try:
        out, _ = submit.communicate(timeout=240)
        assert submit.returncode == 0, out
        assert "amd64: verified: 2/2 builders agree" in out
        assert "timed_out" in out
        final = loop.get(f"/v1/builds/{build['id']}")
        assert final["status"] == "verified" and final["retries"] == 1
        states = {a["builder_id"]: a for a in final["attempts"]}
        assert states[victim_id]["state"] == "timed_out"
        spare = states[victim_id]["replaced_by"]
        assert spare not in {a["builder_id"] for a in build["attempts"]}
        assert states[spare]["state"] == "succeeded" and states[spare]["number"] == 2
    finally:
        if submit.poll() is None:
            submit.kill()
        loop.cluster.start_builder(victim)
