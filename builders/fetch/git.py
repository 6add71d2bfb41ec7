"""The git source: the tree of exactly the pinned commit, from a bare mirror per URL.

The mirror (in the fetch cache) is fetched under a file lock only when it lacks the
commit; ``git archive`` of the commit's tree (or its ``subdir``) streams through the
safe extractor, and the extracted files are checked by recomputing the git tree id
(:func:`git_tree_id`). Refs, submodules and anything but a commit are refused.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, cast

import git

from builders._extract import ExtractLimits, extract_tar_stream, normalized_parts
from builders.errors import FetchError
from builders.fetch.cache import FetchCache
from farm.recipe import GitSource

__all__ = ["GitFetcher", "git_tree_id"]

_HEX40 = re.compile(r"^[0-9a-f]{40}$")
#: Attributes that make ``git archive`` write the blobs of the tree byte for byte.
_RAW_ATTRIBUTES = (
    "* -text -eol -filter -ident -working-tree-encoding -export-subst -export-ignore\n"
)
_GIT_CONFIG = {
    "protocol.allow": "never",
    "protocol.https.allow": "always",
    "protocol.http.allow": "always",
    "protocol.ssh.allow": "always",
    "protocol.git.allow": "always",
    "protocol.file.allow": "always",
    "core.autocrlf": "false",
    "gc.auto": "0",
    "tar.umask": "022",
}


def _blob_id(data: bytes) -> bytes:
    return hashlib.sha1(b"blob %d\x00" % len(data) + data, usedforsecurity=False).digest()


def _file_blob_id(path: str, size: int) -> bytes:
    h = hashlib.sha1(b"blob %d\x00" % size, usedforsecurity=False)
    with open(path, "rb") as f:  # noqa: PTH123 - os.scandir paths are str
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.digest()


def git_tree_id(root: Path) -> str:
    """The git (SHA-1) tree id of a directory as it is on disk.

    Regular files hash as 100644 or 100755 blobs, symlinks as 120000, directories as
    trees. Equal to the commit's tree id exactly when the directory holds that tree.
    """

    def tree(path: str) -> bytes:
        entries: list[tuple[bytes, bytes, bytes]] = []
        with os.scandir(path) as it:
            for entry in it:
                name = os.fsencode(entry.name)
                st = entry.stat(follow_symlinks=False)
                if entry.is_symlink():
                    target = os.fsencode(Path(entry.path).readlink())
                    entries.append((name, b"120000", _blob_id(target)))
                elif entry.is_dir(follow_symlinks=False):
                    entries.append((name + b"/", b"40000", tree(entry.path)))
                else:
                    mode = b"100755" if st.st_mode & 0o100 else b"100644"
                    entries.append((name, mode, _file_blob_id(entry.path, st.st_size)))
        entries.sort(key=lambda e: e[0])
        body = b"".join(
            mode + b" " + name.rstrip(b"/") + b"\x00" + oid for name, mode, oid in entries
        )
        return hashlib.sha1(b"tree %d\x00" % len(body) + body, usedforsecurity=False).digest()

    return tree(os.fspath(root)).hex()


def _git_error(exc: git.GitCommandError) -> str:
    stderr = str(exc.stderr or "").strip().strip("'").strip()
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else f"git exited with status {exc.status}"


class GitFetcher:
    """Exports pinned commits' trees through mirrors in the fetch cache."""

    def __init__(
        self,
        cache: FetchCache,
        progress: Callable[[str], None],
        *,
        extract_limits: ExtractLimits,
        timeout: float,
    ) -> None:
        self._cache = cache
        self._progress = progress
        self._extract_limits = extract_limits
        self._timeout = timeout

    def export(self, src: GitSource, tree: Path) -> None:
        """Export the tree of ``src.commit`` (or its ``subdir``) into ``tree``, verified."""
        url, commit = src.url, src.commit
        what = f"{url} at {commit}"
        if not _HEX40.match(commit):
            raise FetchError(f"{url}: {commit!r} is not a full 40-hex commit; refs are refused")
        if url.startswith("-"):
            raise FetchError(f"{url}: refused (looks like an option)")
        subdir = normalized_parts(src.subdir, "subdir") if src.subdir else ()
        mirror = self._cache.mirror_path(url)
        with self._cache.locked(mirror.with_suffix(".lock")):
            repo = self._open_mirror(mirror, url)
            kind = self._object_type(repo, commit)
            if kind is not None:
                self._progress(f"{url}: {commit[:12]} cached")
            else:
                self._progress(f"fetching {url} for {commit[:12]}…")
                kind = self._git_fetch(repo, url, commit)
        try:
            if kind != "commit":
                raise FetchError(f"{what}: the object is a {kind}, not a commit; refused")
            tree_id, commit_time = self._resolve_tree(repo, what, commit, subdir)
            self._archive(repo, what, tree_id, tree, commit_time)
        finally:
            repo.close()
        actual = git_tree_id(tree)
        if actual != tree_id:
            raise FetchError(f"{what}: exported tree is {actual}, expected {tree_id}; refused")
        self._progress(f"{url}: exported {commit[:12]} (tree {tree_id[:12]}), verified")

    @staticmethod
    def _resolve_tree(
        repo: git.Repo, what: str, commit: str, subdir: tuple[str, ...]
    ) -> tuple[str, int]:
        """The id of the tree to export and the commit time; refuse what cannot be exported."""
        try:
            resolved = repo.git.rev_parse("--verify", "--end-of-options", commit + "^{commit}")
            commit_time = int(repo.git.show("-s", "--format=%ct", commit))
        except git.GitCommandError as exc:
            raise FetchError(f"{what}: {_git_error(exc)}") from None
        if resolved != commit:
            raise FetchError(f"{what}: resolves to commit {resolved}; refused")
        # "C:path^{tree}" would read "^{tree}" as part of the path: resolve, then check.
        treeish = f"{commit}:{'/'.join(subdir)}" if subdir else f"{commit}^{{tree}}"
        try:
            tree_id = str(repo.git.rev_parse("--verify", "--end-of-options", treeish))
            kind = repo.git.cat_file("-t", tree_id)
            listing = repo.git.ls_tree("-r", tree_id).splitlines()
        except git.GitCommandError:
            raise FetchError(f"{what}: subdir {'/'.join(subdir)!r} is not in that commit") from None
        if kind != "tree":
            raise FetchError(f"{what}: subdir {'/'.join(subdir)!r} is not a directory there")
        gitlinks = [line for line in listing if line.startswith("160000")]
        if gitlinks:
            path = gitlinks[0].split("\t", 1)[-1]
            raise FetchError(f"{what}: has a git submodule ({path}); submodules are not fetched")
        return tree_id, commit_time

    def _archive(
        self, repo: git.Repo, what: str, tree_id: str, tree: Path, commit_time: int
    ) -> None:
        """Stream ``git archive`` of ``tree_id`` through the safe extractor into ``tree``."""
        proc = repo.git.archive("--format=tar", tree_id, as_process=True)
        try:
            extract_tar_stream(
                cast(BinaryIO, proc.stdout), tree, limits=self._extract_limits, mtime=commit_time
            )
            proc.wait()
        except git.GitCommandError as exc:
            raise FetchError(f"{what}: git archive failed: {_git_error(exc)}") from None
        except FetchError as exc:
            raise FetchError(f"{what}: {exc}") from None
        finally:
            if proc.proc is not None and proc.proc.poll() is None:
                proc.proc.kill()
                proc.proc.wait()

    def _open_mirror(self, mirror: Path, url: str) -> git.Repo:
        """Open (or atomically create) the bare mirror of ``url``; caller holds its lock."""
        if not mirror.exists():
            tmp = Path(tempfile.mkdtemp(prefix=".mirror-", dir=mirror.parent))
            try:
                # An empty --template: no hooks or config copied from the host's templates.
                git.Repo.init(
                    tmp, bare=True, mkdir=False, template="", allow_unsafe_options=True
                ).close()
                (tmp / "info").mkdir(exist_ok=True)
                (tmp / "info" / "attributes").write_text(_RAW_ATTRIBUTES, encoding="utf-8")
                (tmp / "description").write_text(url + "\n", encoding="utf-8")
                tmp.rename(mirror)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        repo = git.Repo(mirror)
        env = {
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_SSH_COMMAND": "ssh -o BatchMode=yes",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_COUNT": str(len(_GIT_CONFIG)),
        }
        for i, (key, value) in enumerate(_GIT_CONFIG.items()):
            env[f"GIT_CONFIG_KEY_{i}"] = key
            env[f"GIT_CONFIG_VALUE_{i}"] = value
        repo.git.update_environment(**env)
        return repo

    @staticmethod
    def _object_type(repo: git.Repo, oid: str) -> str | None:
        """``commit``, ``tree``, ``blob`` or ``tag`` if the mirror has ``oid``, else None."""
        try:
            return str(repo.git.cat_file("-t", oid))
        except git.GitCommandError:
            return None

    def _git_fetch(self, repo: git.Repo, url: str, commit: str) -> str:
        """Fetch ``commit`` itself, else every branch and tag; pin it; return its type."""
        timeout = self._timeout
        try:
            repo.git.fetch("--no-tags", "--quiet", "--", url, commit, kill_after_timeout=timeout)
        except git.GitCommandError:
            # Some servers serve only advertised refs; take them all and look again.
            try:
                repo.git.fetch(
                    "--no-tags",
                    "--quiet",
                    "--",
                    url,
                    "+refs/heads/*:refs/farm/heads/*",
                    "+refs/tags/*:refs/farm/tags/*",
                    kill_after_timeout=timeout,
                )
            except git.GitCommandError as exc:
                raise FetchError(
                    f"{url}: cannot fetch commit {commit}: {_git_error(exc)}"
                ) from None
        kind = self._object_type(repo, commit)
        if kind is None:
            raise FetchError(f"{url}: commit {commit} not found in the repository")
        if kind == "commit":
            repo.git.update_ref(f"refs/farm/pinned/{commit}", commit)
        return kind
