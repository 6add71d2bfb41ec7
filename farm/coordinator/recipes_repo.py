"""The recipe follower: schedule every recipe that lands on the followed branch.

The coordinator keeps a clone of the recipe repository (a local path or a URL) and
polls it every ``interval`` seconds, or at once when :meth:`RecipeFollower.wake` is
called (the push webhook). On each poll it fetches the branch, checks out its tip and
looks at every ``recipes/NAME/VERSION.yaml``:

* a file that does not lint clean (:func:`farm.recipe_lint.lint_paths`) is recorded
  ``lint_failed`` with its problems, and nothing is built;
* a clean recipe whose name and version are attested (a verified build exists) under
  another digest changes history in place: it is recorded ``refused_changed`` ("a new
  version needs a new file") and nothing is built;
* a clean recipe whose digest has no build yet is scheduled (one managed build per
  architecture, each carrying the commit that brought it); one that already has a
  build is only recorded.

The branch's tip is kept (:class:`~farm.coordinator.models.RecipeBranch`): a new tip
that does not descend from the last one seen is a rewritten branch (a force push); it
is logged and recorded for the operator (``GET /v1/recipes/branches``), and the poll
goes on under the rules above, so nothing built or attested is touched.

Only the branch's tip counts: a recipe removed from the branch is not built again,
but its record stays.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from datetime import datetime
from pathlib import Path

import git
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from farm.coordinator.models import (
    Build,
    RecipeBranch,
    RecipeBranchPublic,
    RecipeEntry,
    RecipePublic,
    utcnow,
)
from farm.coordinator.scheduler import request_build
from farm.errors import ConfigError, FarmError
from farm.recipe_lint import lint_paths

__all__ = ["RecipeFollower", "list_branches", "list_recipes", "signature_matches"]

#: What the follower records for a recipe that changes an attested version in place.
REFUSED_CHANGED = "refused_changed"

log = logging.getLogger(__name__)


def signature_matches(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is GitHub's ``X-Hub-Signature-256`` of ``body`` under ``secret``."""
    if not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header.removeprefix("sha256="))


def list_recipes(session: Session, *, limit: int = 100, offset: int = 0) -> list[RecipePublic]:
    """Followed recipes by path, each with its latest build's id and verdict."""
    rows = session.exec(
        select(RecipeEntry).order_by(col(RecipeEntry.path)).offset(offset).limit(limit)
    ).all()
    out = []
    for row in rows:
        last = None
        if row.digest is not None:
            last = session.exec(
                select(Build)
                .where(Build.recipe_digest == row.digest)
                .order_by(col(Build.created_at).desc())
            ).first()
        out.append(
            RecipePublic(
                **row.model_dump(),
                last_build_id=last.id if last else None,
                last_verdict=last.status if last is not None and last.verdict else None,
            )
        )
    return out


def list_branches(session: Session) -> list[RecipeBranchPublic]:
    """The followed branches: tip, last poll, and the rewrites (force pushes) seen."""
    rows = session.exec(
        select(RecipeBranch).order_by(col(RecipeBranch.source), col(RecipeBranch.branch))
    ).all()
    return [RecipeBranchPublic.model_validate(row.model_dump()) for row in rows]


def _attested_other(session: Session, name: str, version: str, digest: str) -> Build | None:
    """A verified build of ``name`` ``version`` under another digest, if there is one and
    none under ``digest`` itself (then ``digest`` is what was attested)."""
    verified = session.exec(
        select(Build)
        .where(Build.name == name, Build.version == version, Build.status == "verified")
        .order_by(col(Build.created_at))
    ).all()
    if any(b.recipe_digest == digest for b in verified):
        return None
    return verified[0] if verified else None


class RecipeFollower:
    """Follows one branch of one recipe repository into scheduled builds."""

    def __init__(
        self,
        engine: Engine,
        source: str,
        checkout: Path,
        *,
        branch: str = "main",
        interval: float = 60.0,
    ) -> None:
        self.engine = engine
        self.source = source
        self.checkout = checkout
        self.branch = branch
        self.interval = interval
        self._wake = threading.Event()
        self._lock = threading.Lock()

    def wake(self) -> None:
        """Poll as soon as possible (a push was announced)."""
        self._wake.set()

    def _update(self, last: str | None) -> tuple[str, bool]:
        """Fetch and check out the branch's tip; return it and whether the branch was
        rewritten since ``last`` (the tip seen before; an unknown one counts as rewritten)."""
        try:
            if not (self.checkout / ".git").exists():
                self.checkout.parent.mkdir(parents=True, exist_ok=True)
                repo = git.Repo.clone_from(self.source, self.checkout, no_checkout=True)
            else:
                repo = git.Repo(self.checkout)
                repo.remotes.origin.fetch(prune=True)
            ref = f"origin/{self.branch}"
            repo.git.checkout("--force", "--detach", ref)
            repo.git.clean("-fdx")
            tip = str(repo.head.commit.hexsha)
        except (git.GitCommandError, git.InvalidGitRepositoryError, ValueError) as exc:
            raise ConfigError(f"cannot follow {self.source} ({self.branch}): {exc}") from None
        if last is None or last == tip:
            return tip, False
        try:
            repo.git.merge_base("--is-ancestor", last, tip)
        except git.GitCommandError:  # exit 1: not an ancestor; 128: a commit gone
            return tip, True
        return tip, False

    def _branch(self, session: Session, tip: str, rewritten: bool, now: datetime) -> None:
        """Record the branch's tip, and the rewrite if it was rewritten."""
        row = self._branch_row(session) or RecipeBranch(
            source=self.source, branch=self.branch, tip=tip, polled_at=now
        )
        if rewritten:
            log.warning(
                "the followed branch %s of %s was rewritten (force push): %s is not an "
                "ancestor of the new tip %s; nothing built or attested is touched",
                self.branch, self.source, row.tip[:12], tip[:12],
            )  # fmt: skip
            row.rewrites += 1
            row.rewritten_at, row.rewritten_from, row.rewritten_to = now, row.tip, tip
        row.tip, row.polled_at = tip, now
        session.add(row)
        session.commit()

    def _branch_row(self, session: Session) -> RecipeBranch | None:
        return session.exec(
            select(RecipeBranch).where(
                RecipeBranch.source == self.source, RecipeBranch.branch == self.branch
            )
        ).first()

    def poll(self, now: datetime | None = None) -> list[str]:
        """Fetch, lint and schedule; return the ids of the builds requested."""
        with self._lock:
            now = now or utcnow()
            with Session(self.engine, expire_on_commit=False) as session:
                row = self._branch_row(session)
                commit, rewritten = self._update(row.tip if row is not None else None)
                self._branch(session, commit, rewritten, now)
                root = self.checkout / "recipes"
                files = sorted(root.glob("*/*.yaml")) if root.is_dir() else []
                requested: list[str] = []
                for file in files:
                    rel = str(file.relative_to(self.checkout))
                    requested.extend(self._one(session, file, rel, commit, now))
            if requested:
                log.info("recipes at %s: %d build(s) requested", commit[:12], len(requested))
            return requested

    def _one(self, session: Session, file: Path, rel: str, commit: str, now: datetime) -> list[str]:
        recipes, problems = lint_paths([file])
        entry = session.get(RecipeEntry, rel) or RecipeEntry(
            path=rel, commit=commit, status="new", seen_at=now
        )
        before = (entry.status, entry.digest, list(entry.problems))
        entry.commit, entry.seen_at = commit, now
        requested: list[str] = []
        if problems or len(recipes) != 1:
            entry.status = "lint_failed"
            entry.problems = [str(p).replace(str(self.checkout) + "/", "") for p in problems]
            entry.name = entry.version = entry.digest = None
        else:
            (recipe,) = recipes
            entry.name, entry.version, entry.digest = recipe.name, recipe.version, recipe.digest
            entry.problems = []
            entry.status = "scheduled"
            attested = _attested_other(session, recipe.name, recipe.version, recipe.digest)
            exists = session.exec(
                select(Build.id).where(Build.recipe_digest == recipe.digest)
            ).first()
            if attested is not None:
                entry.status = REFUSED_CHANGED
                entry.problems = [
                    f"{recipe.name} {recipe.version} is attested ({attested.recipe_digest}, "
                    f"build {attested.id}); this file changes it in place to {recipe.digest}: "
                    "a new version needs a new file"
                ]
            elif exists is None:
                try:
                    builds = request_build(session, recipe, now, origin=f"repo:{rel}@{commit[:12]}")
                except FarmError as exc:
                    entry.status = "lint_failed"
                    entry.problems = [f"cannot schedule: {exc}"]
                else:
                    for build in builds:
                        build.commit = commit
                        session.add(build)
                    requested.extend(b.id for b in builds)
        if (entry.status, entry.digest, entry.problems) != before and entry.problems:
            log.warning("recipe %s at %s: %s: %s", rel, commit[:12], entry.status,
                        "; ".join(entry.problems))  # fmt: skip
        session.add(entry)
        session.commit()
        return requested

    def run(self, stop: threading.Event) -> None:
        """Poll every ``interval`` seconds (or when woken) until ``stop`` is set."""
        while not stop.is_set():
            try:
                self.poll()
            except FarmError as exc:
                log.error("recipe follower: %s", exc)
            except Exception:  # the follower must outlive one bad poll
                log.exception("recipe follower: poll failed")
            self._wake.wait(self.interval)
            self._wake.clear()
