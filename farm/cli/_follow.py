"""Which recipe repository ``farm up`` follows, and what it can tell about it beforehand.

By default the git repository of the current directory (its toplevel, if it has a
``recipes/`` folder) on its current branch; or the repository ``--recipes-repo`` names
(a path or a URL) on ``--recipes-branch`` (a local repository's current branch, else
``main``). The follower builds recipes exactly as committed: one pinned to a builder
image this host does not build identically is only reported here, never re-pinned
(``farm up`` re-pins its own RECIPE, not the repository's).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

import yaml

from farm.errors import ConfigError, FarmError, ImageDriftError

__all__ = ["Followed", "choose", "drifted", "pinned_images"]


@dataclass(frozen=True)
class Followed:
    """A recipe repository and the branch of it to follow."""

    source: str
    branch: str
    local: Path | None
    """The repository's toplevel when it is on this machine (else None: a URL)."""


def _git(cwd: Path, *argv: str) -> str | None:
    """``git`` in ``cwd``: its stdout, or None if it fails (not a repository, no branch)."""
    try:
        proc = subprocess.run(
            ["git", *argv], cwd=cwd, capture_output=True, text=True, check=False, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def choose(cwd: Path, repo: str | None, branch: str | None) -> tuple[Followed | None, str]:
    """The repository to follow and a line saying so, or None and a line saying why not.

    Raises:
        ConfigError: ``repo`` is a local path that is not a git repository, or its branch
            cannot be told (a detached HEAD and no ``branch``).
    """
    if repo is not None:
        path = Path(repo).expanduser()
        if "://" in repo or (":" in repo and not path.exists()):  # a URL, or user@host:path
            followed = Followed(repo, branch or "main", None)
            return followed, _following(followed)
        if not path.is_dir():
            raise ConfigError(f"--recipes-repo {repo}: no such directory")
        top = _git(path, "rev-parse", "--show-toplevel")
        if top is None:
            raise ConfigError(f"--recipes-repo {repo}: not a git repository")
        return _local(Path(top), branch, f"--recipes-repo {repo}")
    top = _git(cwd, "rev-parse", "--show-toplevel")
    if top is None or not (Path(top) / "recipes").is_dir():
        return None, (
            f"not following a recipe repository: {cwd} is not in a git repository with a "
            "recipes/ folder (--recipes-repo names one)"
        )
    return _local(Path(top), branch, str(top))


def _local(top: Path, branch: str | None, what: str) -> tuple[Followed, str]:
    current = branch or _git(top, "symbolic-ref", "--quiet", "--short", "HEAD")
    if current is None:
        raise ConfigError(
            f"{what} is on a detached HEAD: check out a branch, give --recipes-branch, "
            "or --no-follow"
        )
    followed = Followed(str(top), current, top)
    return followed, _following(followed)


def _following(f: Followed) -> str:
    return (
        f"following the recipes on {f.branch} of {f.source}: every recipe committed there "
        "is built, attested and served (no farm submit needed)"
    )


def _pins(data: object) -> list[tuple[str, str]]:
    """(arch, image) for each architecture a decoded recipe lists, as far as it says."""
    if not isinstance(data, dict) or not isinstance(data.get("image"), str):
        return []
    arches = data.get("architectures")
    images = data.get("images")
    per_arch = images if isinstance(images, dict) else {}
    if not isinstance(arches, list) or not arches:
        arches = ["amd64"]  # the recipe does not validate; its default image is still pinned
    return [
        (arch, image)
        for arch in arches
        if isinstance(arch, str)
        for image in [per_arch.get(arch, data["image"])]
        if isinstance(image, str)
    ]


def pinned_images(f: Followed) -> dict[tuple[str, str], list[str]]:
    """The builder images the recipes on the followed branch pin, by (architecture,
    image), each with its recipes' paths (a local repository only; empty for a URL or a
    branch that does not exist)."""
    if f.local is None:
        return {}
    listing = _git(f.local, "ls-tree", "-r", "--name-only", f.branch, "--", "recipes")
    images: dict[tuple[str, str], list[str]] = {}
    for path in (listing or "").splitlines():
        if path.count("/") != 2 or not path.endswith(".yaml"):
            continue
        text = _git(f.local, "show", f"{f.branch}:{path}")
        try:
            data = yaml.safe_load(text or "")
        except yaml.YAMLError:
            continue  # the follower records it as lint_failed
        for pin in _pins(data):
            images.setdefault(pin, []).append(path)
    return images


def drifted(
    f: Followed,
    ensure_image: Callable[[str, str], None],
    warn: Callable[[str], None],
    arches: Collection[str] | None = None,
) -> list[str]:
    """Check each image the followed recipes pin for an architecture in ``arches`` (this
    host's; all when None): ``ensure_image(image, arch)`` builds a missing one; warn
    about those this host cannot provide; return the paths of their recipes.

    The follower builds them as committed, so their builds fail here: a recipe is
    re-pinned by a commit, never silently.
    """
    affected: list[str] = []
    for (arch, image), paths in sorted(pinned_images(f).items()):
        if arches is not None and arch not in arches:
            continue
        try:
            ensure_image(image, arch)
        except ImageDriftError as drift:
            why = f"this host builds {drift.built[:19]}… instead"
        except FarmError as exc:
            why = str(exc)
        else:
            continue
        affected += [p for p in paths if p not in affected]
        warn(
            f"{len(paths)} followed recipe(s) pin {arch} builder image {image[:19]}…: {why}; "
            f"they are built as committed and will fail here (re-pin them by a commit): "
            f"{', '.join(paths)}"
        )
    return affected
