"""Which recipe repository ``farm up`` follows, on real git repositories."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from farm.cli._follow import choose, drifted, pinned_images
from farm.errors import ConfigError, ImageDriftError
from tests.support.git import git as _git
from tests.unit.farm.conftest import BASE_RECIPE

PINNED = str(BASE_RECIPE["image"])
OTHER = "sha256:" + "cd" * 32


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository on branch ``work`` with one committed recipe (and one uncommitted)."""
    path = tmp_path / "repo"
    (path / "recipes" / "demo").mkdir(parents=True)
    (path / "recipes" / "demo" / "1.0.0.yaml").write_text(yaml.safe_dump(BASE_RECIPE))
    _git(path, "init", "-q", "-b", "work")
    _git(path, "add", "-A")
    _git(path, "commit", "-qm", "demo")
    (path / "recipes" / "demo" / "2.0.yaml").write_text(
        yaml.safe_dump({**BASE_RECIPE, "version": "2.0", "image": OTHER})
    )
    return path


def test_the_current_directorys_repository_and_branch_are_followed(repo: Path) -> None:
    (repo / "sub").mkdir()
    followed, line = choose(repo / "sub", None, None)
    assert followed is not None
    assert (followed.source, followed.branch, followed.local) == (str(repo), "work", repo)
    assert f"following the recipes on work of {repo}" in line


def test_a_directory_without_a_recipe_repository_follows_nothing(
    tmp_path: Path, repo: Path
) -> None:
    followed, line = choose(tmp_path, None, None)
    assert followed is None and "not following a recipe repository" in line
    plain = tmp_path / "plain"
    plain.mkdir()
    _git(plain, "init", "-q")
    assert choose(plain, None, None)[0] is None  # a git repository without recipes/


def test_recipes_repo_and_branch_options(tmp_path: Path, repo: Path) -> None:
    followed, _ = choose(tmp_path, str(repo), None)
    assert followed is not None and followed.branch == "work"
    followed, _ = choose(tmp_path, str(repo), "release")
    assert followed is not None and followed.branch == "release"
    url, _ = choose(tmp_path, "git://127.0.0.1:9418/recipes.git", None)
    assert url is not None and (url.branch, url.local) == ("main", None)
    with pytest.raises(ConfigError, match="no such directory"):
        choose(tmp_path, str(tmp_path / "missing"), None)
    with pytest.raises(ConfigError, match="not a git repository"):
        choose(tmp_path, str(tmp_path), None)


def test_a_detached_head_is_an_error_not_a_guess(tmp_path: Path, repo: Path) -> None:
    _git(repo, "checkout", "-q", "--detach")
    with pytest.raises(ConfigError, match="detached HEAD"):
        choose(repo, None, None)
    followed, _ = choose(repo, None, "work")
    assert followed is not None and followed.branch == "work"


def test_images_are_read_from_the_committed_branch_and_drift_is_reported(repo: Path) -> None:
    followed, _ = choose(repo, None, None)
    assert followed is not None
    assert pinned_images(followed) == {
        ("amd64", PINNED): ["recipes/demo/1.0.0.yaml"]  # not 2.0 yet
    }
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "demo 2.0")
    assert set(pinned_images(followed)) == {("amd64", PINNED), ("amd64", OTHER)}

    def ensure(image: str, arch: str) -> None:
        assert arch == "amd64"
        if image == OTHER:
            raise ImageDriftError(OTHER, PINNED)

    warnings: list[str] = []
    assert drifted(followed, ensure, warnings.append) == ["recipes/demo/2.0.yaml"]
    (warning,) = warnings
    assert OTHER[:19] in warning and "recipes/demo/2.0.yaml" in warning
    assert "built as committed" in warning


def test_each_architecture_s_image_is_checked_on_the_hosts_that_build_it(repo: Path) -> None:
    arm = "sha256:" + "ef" * 32
    (repo / "recipes" / "demo" / "3.0.yaml").write_text(
        yaml.safe_dump(
            {**BASE_RECIPE, "version": "3.0", "architectures": ["amd64", "arm64"],
             "images": {"arm64": arm}}
        )
    )  # fmt: skip
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "demo 3.0")
    followed, _ = choose(repo, None, None)
    assert followed is not None
    pins = pinned_images(followed)
    assert pins[("arm64", arm)] == ["recipes/demo/3.0.yaml"]
    assert "recipes/demo/3.0.yaml" in pins[("amd64", PINNED)]
    asked: list[tuple[str, str]] = []

    def ensure(image: str, arch: str) -> None:
        asked.append((arch, image))
        if arch == "arm64":
            raise ImageDriftError(image, OTHER)

    warnings: list[str] = []
    assert drifted(followed, ensure, warnings.append, ("amd64",)) == []
    assert all(arch == "amd64" for arch, _ in asked)
    assert drifted(followed, ensure, warnings.append, ("amd64", "arm64")) == [
        "recipes/demo/3.0.yaml"
    ]
    assert "arm64 builder image" in warnings[-1]
