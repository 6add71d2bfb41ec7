"""What a recipe pull request may not do to history, on a real git repository and database.

The follower polls a local repository (real ``git``); "attested" is a verified build of
the recipe's name and version, set here on the stored row (the rules read nothing else).
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from farm.coordinator import service
from farm.coordinator.models import Build
from farm.coordinator.recipes_repo import RecipeFollower, list_branches, list_recipes
from tests.support.git import git as _git
from tests.unit.farm.conftest import BASE_RECIPE
from tests.unit.farm.coordinator._world import NOW

DEMO = "recipes/demo/1.0.0.yaml"


def _write(repo: Path, data: dict[str, Any]) -> None:
    path = repo / "recipes" / data["name"] / f"{data['version']}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))


def _commit(repo: Path, message: str) -> str:
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", message)
    return _git(repo, "rev-parse", "HEAD")


def _changed(command: str, version: str = "1.0.0") -> dict[str, Any]:
    data = copy.deepcopy(BASE_RECIPE)
    data["build"]["command"] = command
    data["version"] = version
    return data


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A recipe repository with demo 1.0.0 on ``main``."""
    path = tmp_path / "repo"
    path.mkdir()
    _git(path, "init", "-q", "-b", "main")
    _write(path, BASE_RECIPE)
    _commit(path, "demo 1.0.0")
    return path


def _attest(session: Session, build_id: str) -> Build:
    build = session.get(Build, build_id)
    assert build is not None
    build.status, build.verdict = "verified", {"status": "verified", "reason": "3/3 agree"}
    session.add(build)
    session.commit()
    return build


def _builds(session: Session) -> list[tuple[str, str, str]]:
    session.expire_all()
    rows = session.exec(select(Build).order_by(Build.created_at, Build.id)).all()
    return [(b.id, b.recipe_digest, b.status) for b in rows]


def test_a_build_carries_the_commit_that_brought_its_recipe(
    engine: Engine, session: Session, repo: Path, tmp_path: Path
) -> None:
    follower = RecipeFollower(engine, str(repo), tmp_path / "checkout")
    (build_id,) = follower.poll(NOW)
    head = _git(repo, "rev-parse", "HEAD")
    build = session.get(Build, build_id)
    assert build is not None and build.commit == head
    (listed,) = service.list_builds(session).items
    assert listed.commit == head and service.build_public(session, build_id).commit == head


def test_an_attested_recipe_changed_in_place_is_refused_and_nothing_is_built(
    engine: Engine,
    session: Session,
    repo: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    follower = RecipeFollower(engine, str(repo), tmp_path / "checkout")
    (first,) = follower.poll(NOW)
    attested = _attest(session, first)
    before = _builds(session)

    _write(repo, _changed("echo changed > /out/hello.txt"))
    _commit(repo, "change demo 1.0.0 in place")
    with caplog.at_level(logging.WARNING, "farm.coordinator.recipes_repo"):
        assert follower.poll(NOW) == []
        assert follower.poll(NOW) == []  # refused again, but said once
    assert _builds(session) == before  # nothing built, the attested build untouched
    row = {r.path: r for r in list_recipes(session)}[DEMO]
    assert row.status == "refused_changed"
    assert row.digest != attested.recipe_digest and row.last_build_id is None
    (problem,) = row.problems
    assert "a new version needs a new file" in problem
    assert attested.recipe_digest in problem and first in problem
    refusals = [r for r in caplog.records if "refused_changed" in r.getMessage()]
    assert len(refusals) == 1 and DEMO in refusals[0].getMessage()

    # The way forward: a new version in a new file is built ...
    _write(repo, _changed("echo changed > /out/hello.txt", version="1.0.1"))
    _commit(repo, "demo 1.0.1")
    (second,) = follower.poll(NOW)
    assert {b[0] for b in _builds(session)} == {first, second}
    # ... and putting the attested file back as it was ends the refusal, building nothing.
    _write(repo, BASE_RECIPE)
    _commit(repo, "demo 1.0.0 as attested")
    assert follower.poll(NOW) == []
    rows = {r.path: r for r in list_recipes(session)}
    assert rows[DEMO].status == "scheduled" and rows[DEMO].last_build_id == first
    assert rows["recipes/demo/1.0.1.yaml"].status == "scheduled"


@pytest.mark.parametrize("status", ["pending", "failed", "disputed"])
def test_a_recipe_not_yet_attested_may_change_in_place(
    engine: Engine, session: Session, repo: Path, tmp_path: Path, status: str
) -> None:
    follower = RecipeFollower(engine, str(repo), tmp_path / "checkout")
    (first,) = follower.poll(NOW)
    build = session.get(Build, first)
    assert build is not None
    build.status = status
    session.add(build)
    session.commit()
    _write(repo, _changed("echo fixed > /out/hello.txt"))
    _commit(repo, "fix demo 1.0.0 before it is attested")
    (second,) = follower.poll(NOW)
    assert second != first
    row = {r.path: r for r in list_recipes(session)}[DEMO]
    assert row.status == "scheduled" and row.last_build_id == second


def test_a_rewritten_branch_is_detected_recorded_and_touches_nothing_attested(
    engine: Engine,
    session: Session,
    repo: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    follower = RecipeFollower(engine, str(repo), tmp_path / "checkout")
    (first,) = follower.poll(NOW)
    _attest(session, first)
    _write(repo, _changed("echo two > /out/hello.txt", version="2.0"))
    fast_forward = _commit(repo, "demo 2.0")
    (two,) = follower.poll(NOW)
    (branch,) = list_branches(session)
    assert branch.tip == fast_forward and branch.rewrites == 0  # a fast-forward is no rewrite
    before = _builds(session)

    # Force push: drop "demo 2.0" and put another commit in its place, which also
    # changes the attested demo 1.0.0 in place.
    _git(repo, "reset", "-q", "--hard", "HEAD~1")
    _write(repo, _changed("echo rewritten > /out/hello.txt"))
    rewritten = _commit(repo, "rewrite history")
    with caplog.at_level(logging.WARNING, "farm.coordinator.recipes_repo"):
        assert follower.poll(NOW) == []
    (branch,) = list_branches(session)
    assert branch.tip == rewritten and branch.rewrites == 1
    assert (branch.rewritten_from, branch.rewritten_to) == (fast_forward, rewritten)
    assert branch.rewritten_at == NOW and branch.branch == "main"
    assert any("rewritten (force push)" in r.getMessage() for r in caplog.records)
    assert _builds(session) == before  # nothing built, nothing changed
    rows = {r.path: r for r in list_recipes(session)}
    assert rows[DEMO].status == "refused_changed"
    assert rows["recipes/demo/2.0.yaml"].last_build_id == two  # its record stays

    # Growing the rewritten branch is no further rewrite.
    _write(repo, _changed("echo three > /out/hello.txt", version="3.0"))
    _commit(repo, "demo 3.0")
    assert len(follower.poll(NOW)) == 1
    (branch,) = list_branches(session)
    assert branch.rewrites == 1 and branch.rewritten_to == rewritten
