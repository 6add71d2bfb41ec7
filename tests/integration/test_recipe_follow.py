"""The recipe follower against a real git server: push, webhook, history rules.

A recipe repository is served by Debian's ``git daemon`` (push enabled); a contributor
pushes to it over ``git://``. A real ``farm serve --recipes-repo git://…`` with Redis
and three real builders follows it with a poll interval of ten minutes, so only the
push webhook (``X-Hub-Signature-256``) can explain a prompt build. A bad signature is
refused and wakes nothing. Then the history rules: an attested recipe changed in place
is refused with a record, and a force push is detected and recorded; neither builds or
touches anything.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.integration.conftest import write_recipe
from tests.support.git import commit_all, git, git_daemon
from tests.support.served import farm_cli as _farm
from tests.support.served import served_farm, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.redis, pytest.mark.image, pytest.mark.slow]

SECRET = "follow-test-webhook-secret"
RECIPE = "recipes/followed/1.0.yaml"


@dataclass
class Followed:
    """A coordinator following the repository a git daemon serves; a contributor's clone."""

    url: str
    token: str
    http: httpx.Client
    work: Path
    """The contributor's clone (``origin`` is the git daemon)."""
    log: Path

    def get(self, path: str) -> Any:
        response = self.http.get(path)
        assert response.status_code == 200, response.text
        return response.json()

    def push(self, message: str, *, force: bool = False) -> str:
        """Commit everything in the clone and push it to the git server; the new tip."""
        tip = commit_all(self.work, message)
        git(self.work, "push", "-q", *(["--force"] if force else []), "origin", "main")
        return tip

    def hook(self, body: bytes, secret: str = SECRET) -> httpx.Response:
        sig = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return self.http.post("/v1/hooks/push", content=body, headers={"X-Hub-Signature-256": sig})

    def recipe(self, path: str = RECIPE) -> dict[str, Any] | None:
        row: dict[str, Any] | None = {r["path"]: r for r in self.get("/v1/recipes")}.get(path)
        return row

    def branch(self) -> dict[str, Any]:
        (row,) = self.get("/v1/recipes/branches")
        assert isinstance(row, dict)
        return row


@pytest.fixture(scope="module")
def followed(tmp_path_factory: pytest.TempPathFactory, builder_image: str) -> Iterator[Followed]:
    """``farm serve`` with three approved builders, following a repository on a git server."""
    root = tmp_path_factory.mktemp("follow")
    served = root / "served"
    served.mkdir()
    bare = served / "recipes.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    with git_daemon(served, push=True) as git_port:
        remote = f"git://127.0.0.1:{git_port}/recipes.git"
        work = root / "work"
        work.mkdir()
        git(work, "init", "-q", "-b", "main")
        git(work, "remote", "add", "origin", remote)
        (work / "README").write_text("recipes\n")
        commit_all(work, "init")
        git(work, "push", "-q", "origin", "main")
        with served_farm(
            root,
            label="follow test",
            serve_args=["--recipes-repo", remote, "--recipes-poll", "600"],
            serve_env={
                "FARM_COORDINATOR_RECIPES_CHECKOUT": str(root / "checkout"),
                "FARM_COORDINATOR_WEBHOOK_SECRET": SECRET,
            },
        ) as farm:
            yield Followed(farm.url, farm.token, farm.http, work, root / "serve.log")


def _attested(f: Followed, image: str, source: dict[str, str]) -> dict[str, Any]:
    """The followed recipe's verified build (pushed here if no earlier test did)."""
    if not (f.work / RECIPE).exists():
        write_recipe(f.work / "recipes", image, source, "cp data.txt /out/data.txt\n",
                     ["data.txt"], name="followed", version="1.0")  # fmt: skip
        f.push("add followed 1.0")
        assert f.hook(b'{"ref": "refs/heads/main"}').status_code == 202

    def decided() -> dict[str, Any] | None:
        page = f.get("/v1/builds?name=followed")
        done = [b for b in page["items"] if b["status"] not in ("pending", "running")]
        return done[-1] if done else None

    build = wait_for("the followed recipe's verdict", decided, 240, 0.5)
    assert build["status"] == "verified", build
    return build


def test_a_push_then_its_signed_webhook_builds_the_recipe_and_a_bad_signature_wakes_nothing(
    followed: Followed, builder_image: str, git_source: dict[str, str]
) -> None:
    f = followed
    first = wait_for("the follower's first poll", lambda: f.get("/v1/recipes/branches") or None, 30)
    polled = first[0]["polled_at"]
    write_recipe(f.work / "recipes", builder_image, git_source, "cp data.txt /out/data.txt\n",
                 ["data.txt"], name="followed", version="1.0")  # fmt: skip
    tip = f.push("add followed 1.0")
    body = json.dumps({"ref": "refs/heads/main", "after": tip}).encode()

    forged = f.hook(body, secret="not-the-secret")
    assert forged.status_code == 401, forged.text
    unsigned = f.http.post("/v1/hooks/push", content=body)
    assert unsigned.status_code == 401
    # Nothing woke: for a few seconds the follower does not poll (its interval is 600 s).
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        assert f.branch()["polled_at"] == polled and f.recipe() is None
        time.sleep(0.25)

    accepted = f.hook(body)
    assert accepted.status_code == 202, accepted.text
    verified = _attested(f, builder_image, git_source)
    row = f.recipe()
    assert row is not None and row["status"] == "scheduled" and row["commit"] == tip
    assert row["last_build_id"] == verified["id"] and row["last_verdict"] == "verified"
    assert f.branch()["tip"] == tip and f.branch()["rewrites"] == 0
    build = f.get(f"/v1/builds/{verified['id']}")
    assert build["commit"] == tip and build["origin"] == f"repo:{RECIPE}@{tip[:12]}"
    assert build["status"] == "verified"

    # The commit shows where builds are listed, and the recipe where recipes are.
    builds = _farm("builds", "--coordinator", f.url, "--name", "followed")
    assert builds.returncode == 0, builds.stderr
    assert f"followed 1.0 @{tip[:8]}" in builds.stdout and "verified" in builds.stdout
    wide = _farm("builds", "--coordinator", f.url, "--name", "followed", "--wide")
    assert tip in wide.stdout
    recipes = _farm("recipes", "--coordinator", f.url)
    assert recipes.returncode == 0, recipes.stderr
    assert "followed 1.0" in recipes.stdout and "scheduled" in recipes.stdout
    assert tip[:8] in recipes.stdout
    assert f"@{tip[:8]}" in f.http.get("/").text
    assert tip in f.http.get(f"/builds/{build['id']}").text


def test_an_attested_recipe_changed_in_place_is_refused_and_nothing_is_built(
    followed: Followed, builder_image: str, git_source: dict[str, str]
) -> None:
    f = followed
    attested = _attested(f, builder_image, git_source)
    builds_before = f.get("/v1/builds?name=followed")
    path = f.work / RECIPE
    data = yaml.safe_load(path.read_text())
    data["build"]["command"] = "cp data.txt /out/data.txt; echo changed >> /out/data.txt\n"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    tip = f.push("change followed 1.0 in place")
    assert f.hook(json.dumps({"after": tip}).encode()).status_code == 202

    def seen() -> dict[str, Any] | None:
        row = f.recipe()
        return row if row is not None and row["commit"] == tip else None

    row = wait_for("the follower to see the change", seen, 60, 0.2)
    assert row["status"] == "refused_changed", row
    assert row["digest"] != attested["recipe_digest"] and row["last_build_id"] is None
    (problem,) = row["problems"]
    assert "a new version needs a new file" in problem and attested["recipe_digest"] in problem
    assert f.get("/v1/builds?name=followed") == builds_before  # nothing built or changed
    listed = _farm("recipes", "--coordinator", f.url)
    assert "refused_changed" in listed.stdout
    assert "a new version needs a new file" in listed.stdout
    assert "refused_changed" in f.log.read_text()


def test_a_force_push_is_detected_recorded_and_touches_nothing_attested(
    followed: Followed, builder_image: str, git_source: dict[str, str]
) -> None:
    f = followed
    _attested(f, builder_image, git_source)
    builds_before = f.get("/v1/builds?name=followed")
    before = f.branch()
    git(f.work, "reset", "-q", "--hard", "HEAD~1")
    (f.work / "NOTES").write_text("history, rewritten\n")
    tip = f.push("rewrite the branch", force=True)
    assert f.hook(json.dumps({"after": tip, "forced": True}).encode()).status_code == 202

    def rewritten() -> dict[str, Any] | None:
        row = f.branch()
        return row if row["tip"] == tip else None

    row = wait_for("the follower to see the rewritten branch", rewritten, 60, 0.2)
    assert row["rewrites"] == before["rewrites"] + 1
    assert (row["rewritten_from"], row["rewritten_to"]) == (before["tip"], tip)
    assert "was rewritten (force push)" in f.log.read_text()
    assert f.get("/v1/builds?name=followed") == builds_before  # nothing attested touched
    assert f.get("/v1/builds?verdict=verified&name=followed")["total"] == 1
