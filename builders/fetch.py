"""Fetch what a recipe pins, outside the container, verified and cached by digest.

The builder runs this before the hermetic (network-less) build step. Invariants:

- **Nothing unverified is used or kept.** A download is hashed while it streams and
  renamed into the cache only when its sha256 is the pinned one; a git export is the
  tree of exactly the pinned commit, checked by recomputing the git tree id of the
  extracted files. Any mismatch raises :class:`FetchError` and leaves nothing behind.
- **The cache is content-addressed and safe to share** between processes on one host:
  blobs live at ``blobs/sha256/<hex>`` and index records at
  ``pypi/<project>/<version>/<hex>``, each written to a temporary file and renamed;
  a git mirror per URL (``git/<sha256 of url>.git``) is fetched under a file lock. A
  cached blob is re-hashed before use, so a damaged cache is refetched, never trusted.
- **The tree does not depend on when or where it was fetched**: archive members keep
  their times (git trees get the commit time), modes are 0o755 / 0o644, and
  dependency files get a fixed time.
- **The network is only reached on a cache miss**, through one ``httpx.Client``
  (injectable), following redirects only to https or to the configured index.

Layout of ``dest`` after success: ``dest/src`` (the source tree) and ``dest/deps``
(the dependency files under their original names), ready to mount at ``/src`` and
``/deps``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, cast

import git
import httpx

from builders._extract import ExtractLimits, extract_archive, extract_tar_stream, normalized_parts
from farm.errors import FetchError
from farm.recipe import ArchiveSource, GitSource, PypiDependency, PypiSource, Source

__all__ = [
    "FIXED_MTIME",
    "FetchLimits",
    "Fetcher",
    "IndexFile",
    "git_tree_id",
    "human_size",
    "index_files",
    "mirror_name",
    "normalize_project",
    "select_file",
    "url_allowed",
]

log = logging.getLogger(__name__)

_HEX40 = re.compile(r"^[0-9a-f]{40}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_FILENAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+!-]*$")
_CHUNK = 1 << 16
_MAX_REDIRECTS = 8
#: Time given to cached blobs and dependency files (1980-01-01, the zip epoch).
FIXED_MTIME = 315532800
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


@dataclass(frozen=True)
class FetchLimits:
    """Caps and timeouts of one :class:`Fetcher`."""

    max_download: int = 2 * 2**30
    """Bytes of one downloaded file."""
    max_index: int = 32 * 2**20
    """Bytes of one PyPI JSON document."""
    extract: ExtractLimits = field(default_factory=ExtractLimits)
    """Caps on an extracted source tree."""
    git_timeout: float = 1800.0
    """Seconds one git command may run."""


@dataclass(frozen=True)
class IndexFile:
    """One file of a release as the PyPI JSON API lists it."""

    filename: str
    url: str
    sha256: str
    size: int | None
    packagetype: str


# --- pure helpers -------------------------------------------------------------------


def normalize_project(name: str) -> str:
    """PEP 503 normalized project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def human_size(n: int | None) -> str:
    """``4.8 kB``-style size for progress messages; ``size unknown`` for None."""
    if n is None:
        return "size unknown"
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


def mirror_name(url: str) -> str:
    """Directory name of the cached bare mirror of ``url``."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest() + ".git"


def url_allowed(url: httpx.URL, base: httpx.URL) -> bool:
    """May we follow a redirect (or an index link) to ``url``? Only https, or under ``base``."""
    if url.scheme == "https":
        return True
    base_path = base.path if base.path.endswith("/") else base.path + "/"
    return (
        url.scheme == base.scheme
        and url.host == base.host
        and url.port == base.port
        and (url.path + "/").startswith(base_path)
    )


def index_files(entries: object, doc_url: str) -> list[IndexFile]:
    """The well-formed file entries of a PyPI JSON ``urls`` (or ``releases[v]``) list.

    Relative URLs (some mirrors write them) are resolved against ``doc_url``;
    malformed entries are skipped, since only an entry matching the pin is ever used.
    """
    files: list[IndexFile] = []
    if not isinstance(entries, list):
        return files
    base = httpx.URL(doc_url)
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        digests = entry.get("digests")
        filename, url = entry.get("filename"), entry.get("url")
        sha = digests.get("sha256") if isinstance(digests, dict) else None
        if not (isinstance(filename, str) and isinstance(url, str) and isinstance(sha, str)):
            continue
        size = entry.get("size")
        packagetype = entry.get("packagetype")
        files.append(
            IndexFile(
                filename=filename,
                url=str(base.join(url)),
                sha256=sha.lower(),
                size=size if isinstance(size, int) and not isinstance(size, bool) else None,
                packagetype=packagetype if isinstance(packagetype, str) else "",
            )
        )
    return files


def select_file(
    files: Sequence[IndexFile],
    *,
    what: str,
    sha256: str,
    filename: str | None = None,
    sdist_only: bool = False,
) -> IndexFile:
    """The one file matching the pin; raise :class:`FetchError` explaining why none does."""
    matches = [
        f
        for f in files
        if f.sha256 == sha256
        and (filename is None or f.filename == filename)
        and (not sdist_only or f.packagetype == "sdist")
    ]
    if matches:
        chosen = matches[0]
        if not _FILENAME_RE.match(chosen.filename):
            raise FetchError(f"{what}: the index names the file {chosen.filename!r}, refused")
        return chosen
    kind = "sdist" if sdist_only else "file"
    named = [f for f in files if filename is not None and f.filename == filename]
    same_hash = [f for f in files if f.sha256 == sha256]
    if named:
        why = f"{filename} has sha256 {named[0].sha256}, not the pinned {sha256}"
    elif same_hash and sdist_only and all(f.packagetype != "sdist" for f in same_hash):
        why = f"the file with sha256 {sha256} is a {same_hash[0].packagetype}, not an sdist"
    elif same_hash and filename is not None:
        why = f"the file with sha256 {sha256} is {same_hash[0].filename}, not {filename}"
    else:
        listed = ", ".join(f"{f.filename} ({f.sha256[:12]}…)" for f in files[:6]) or "none"
        why = f"no {kind} has sha256 {sha256}; files listed: {listed}"
    raise FetchError(f"{what}: {why}")


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


# --- small I/O helpers --------------------------------------------------------------


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (created if absent), across processes."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes, tmp_dir: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=tmp_dir, prefix=".rec-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        path.parent.mkdir(parents=True, exist_ok=True)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _sha256_path(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _git_error(exc: git.GitCommandError) -> str:
    stderr = str(exc.stderr or "").strip().strip("'").strip()
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else f"git exited with status {exc.status}"


@contextlib.contextmanager
def _staging(dest: Path, name: str) -> Iterator[Path]:
    """A fresh directory under ``dest`` renamed to ``dest/name`` on success, removed on error."""
    final = dest / name
    dest.mkdir(parents=True, exist_ok=True)
    if final.exists() or final.is_symlink():
        raise FetchError(f"{final} already exists; fetch into a fresh directory")
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=dest))
    try:
        yield staging
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


# --- the fetcher --------------------------------------------------------------------


class Fetcher:
    """Fetches, verifies and caches recipe sources and build dependencies.

    ``http`` is used as given (tests point it at a local server); otherwise the
    fetcher makes and owns a client. ``progress`` receives one line per step.
    """

    def __init__(
        self,
        cache_dir: Path,
        *,
        pypi_url: str = "https://pypi.org",
        http: httpx.Client | None = None,
        progress: Callable[[str], None] | None = None,
        limits: FetchLimits | None = None,
    ) -> None:
        self._cache = cache_dir
        self._base = httpx.URL(pypi_url.rstrip("/") + "/")
        self._own_http = http is None
        self._http = http or httpx.Client(timeout=httpx.Timeout(60.0, connect=20.0))
        self._progress = progress or (lambda msg: log.info("%s", msg))
        self._limits = limits or FetchLimits()
        for sub in ("blobs/sha256", "pypi", "git", "tmp"):
            (cache_dir / sub).mkdir(parents=True, exist_ok=True)

    def close(self) -> None:
        """Close the HTTP client if this fetcher made it."""
        if self._own_http:
            self._http.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- public --------------------------------------------------------------------

    def source(self, source: Source, dest: Path) -> Path:
        """Fetch, verify and extract ``source`` into ``dest/src``; return that directory.

        With a git ``subdir``, the returned directory is that subdirectory's tree.
        Raises :class:`FetchError` (and leaves no ``dest/src``) on any failure.
        """
        with _staging(dest, "src") as tree:
            if isinstance(source, GitSource):
                self._git_export(source, tree)
            elif isinstance(source, ArchiveSource):
                label = source.url.rstrip("/").rsplit("/", 1)[-1] or source.url
                blob = self._blob(source.url, source.sha256, label, None)
                self._progress(f"extracting {label}")
                extract_archive(
                    blob,
                    tree,
                    strip_components=source.strip_components,
                    limits=self._limits.extract,
                )
            elif isinstance(source, PypiSource):
                blob, found = self._pypi_file(
                    source.name, source.version, source.sha256, source.filename, sdist_only=True
                )
                self._progress(f"extracting {found}")
                extract_archive(blob, tree, strip_components=1, limits=self._limits.extract)
            else:  # pragma: no cover - the recipe model admits no other source
                raise FetchError(f"unknown source type {type(source).__name__}")
        return dest / "src"

    def dependencies(self, deps: Sequence[PypiDependency], dest: Path) -> Path:
        """Fetch and verify every dependency into ``dest/deps`` under its file name.

        Raises :class:`FetchError` naming the first dependency that is missing from the
        index, does not match its pin, or collides with another's file name.
        """
        with _staging(dest, "deps") as out:
            for dep in deps:
                blob, filename = self._pypi_file(
                    dep.name, dep.version, dep.sha256, dep.filename, sdist_only=False
                )
                target = out / filename
                if target.exists():
                    raise FetchError(f"{dep.name}=={dep.version}: two dependencies are {filename}")
                try:
                    os.link(blob, target)
                except OSError:
                    shutil.copyfile(blob, target)
                    target.chmod(0o444)
                    os.utime(target, (FIXED_MTIME, FIXED_MTIME))
            out.chmod(0o755)
            os.utime(out, (FIXED_MTIME, FIXED_MTIME))
        return dest / "deps"

    # -- git -----------------------------------------------------------------------

    def _git_export(self, src: GitSource, tree: Path) -> None:
        """Export the tree of ``src.commit`` (or its ``subdir``) into ``tree``, verified."""
        url, commit = src.url, src.commit
        what = f"{url} at {commit}"
        if not _HEX40.match(commit):
            raise FetchError(f"{url}: {commit!r} is not a full 40-hex commit; refs are refused")
        if url.startswith("-"):
            raise FetchError(f"{url}: refused (looks like an option)")
        subdir = normalized_parts(src.subdir, "subdir") if src.subdir else ()
        mirror = self._cache / "git" / mirror_name(url)
        with _locked(mirror.with_suffix(".lock")):
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
                cast(BinaryIO, proc.stdout), tree, limits=self._limits.extract, mtime=commit_time
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
        timeout = self._limits.git_timeout
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

    # -- http ----------------------------------------------------------------------

    @contextlib.contextmanager
    def _get(self, url: str) -> Iterator[httpx.Response]:
        """GET ``url`` streamed, following only allowed redirects; yield the final response."""
        try:
            current = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise FetchError(f"{url}: invalid URL ({exc})") from None
        if current.scheme not in ("http", "https"):
            raise FetchError(f"{url}: only http and https URLs are fetched")
        for _ in range(_MAX_REDIRECTS + 1):
            request = self._http.build_request(
                "GET", current, headers={"Accept-Encoding": "identity"}
            )
            try:
                response = self._http.send(request, stream=True, follow_redirects=False)
            except httpx.HTTPError as exc:
                raise FetchError(f"{url}: {type(exc).__name__}: {exc}") from None
            if response.is_redirect and "location" in response.headers:
                response.close()
                target = current.join(response.headers["location"])
                if not url_allowed(target, self._base):
                    raise FetchError(
                        f"{url}: redirect to {target} refused (only https or under {self._base})"
                    )
                current = target
                continue
            try:
                yield response
            finally:
                response.close()
            return
        raise FetchError(f"{url}: more than {_MAX_REDIRECTS} redirects")

    def _get_json(self, url: str) -> object | None:
        """The JSON document at ``url``, or None on 404."""
        with self._get(url) as response:
            if response.status_code == 404:
                return None
            if response.status_code != 200:
                raise FetchError(f"{url}: HTTP {response.status_code}")
            body = bytearray()
            try:
                for chunk in response.iter_raw(_CHUNK):
                    body += chunk
                    if len(body) > self._limits.max_index:
                        raise FetchError(f"{url}: more than {self._limits.max_index} bytes")
            except httpx.HTTPError as exc:
                raise FetchError(f"{url}: {type(exc).__name__}: {exc}") from None
        try:
            return cast(object, json.loads(body))
        except ValueError:
            raise FetchError(f"{url}: not JSON") from None

    def _blob_path(self, sha256: str) -> Path:
        if not _HEX64.match(sha256):
            raise FetchError(f"{sha256!r} is not a sha256 hex digest")
        return self._cache / "blobs" / "sha256" / sha256

    def _cached_blob(self, sha256: str) -> Path | None:
        path = self._blob_path(sha256)
        if not path.is_file():
            return None
        actual = _sha256_path(path)
        if actual != sha256:
            log.warning("cached blob %s has sha256 %s; removing it", path, actual)
            path.unlink(missing_ok=True)
            return None
        return path

    def _blob(self, url: str, sha256: str, label: str, size: int | None) -> Path:
        """The verified blob with ``sha256``, from the cache or downloaded from ``url``."""
        cached = self._cached_blob(sha256)
        if cached is not None:
            self._progress(f"{label}: cached sha256:{sha256}")
            return cached
        path = self._blob_path(sha256)
        cap = self._limits.max_download
        fd, tmp_name = tempfile.mkstemp(dir=self._cache / "tmp", prefix=f"{sha256[:16]}.")
        tmp = Path(tmp_name)
        try:
            h = hashlib.sha256()
            n = 0
            with os.fdopen(fd, "wb") as out, self._get(url) as response:
                if response.status_code != 200:
                    raise FetchError(f"{label}: HTTP {response.status_code} from {url}")
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > cap:
                    raise FetchError(f"{label}: {declared} bytes is more than the cap of {cap}")
                if size is None and declared.isdigit():
                    size = int(declared)
                self._progress(f"fetching {label} ({human_size(size)})…")
                try:
                    for chunk in response.iter_raw(_CHUNK):
                        n += len(chunk)
                        if n > cap:
                            raise FetchError(f"{label}: more than the cap of {cap} bytes")
                        h.update(chunk)
                        out.write(chunk)
                except httpx.HTTPError as exc:
                    raise FetchError(f"{label}: {type(exc).__name__}: {exc} ({url})") from None
                out.flush()
                os.fsync(out.fileno())
            actual = h.hexdigest()
            if actual != sha256:
                raise FetchError(
                    f"{label}: sha256 mismatch: expected {sha256}, got {actual} "
                    f"({n} bytes from {url}); nothing kept"
                )
            tmp.chmod(0o444)
            os.utime(tmp, (FIXED_MTIME, FIXED_MTIME))
            tmp.replace(path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._progress(f"{label}: verified sha256:{sha256}")
        return path

    # -- pypi ----------------------------------------------------------------------

    def _record_path(self, name: str, version: str, sha256: str) -> Path:
        return self._cache / "pypi" / normalize_project(name) / version / sha256

    def _pypi_file(
        self, name: str, version: str, sha256: str, filename: str | None, *, sdist_only: bool
    ) -> tuple[Path, str]:
        """The verified file of ``name==version`` with ``sha256``, and its file name.

        A cache hit needs both the blob and the record of what the index called it,
        so the answer does not depend on whether the cache is warm.
        """
        what = f"{name}=={version}"
        record = self._record_path(name, version, sha256)
        with contextlib.suppress(OSError, ValueError):
            cached_name, cached_type = record.read_text(encoding="utf-8").split("\n")[:2]
            if (filename is None or cached_name == filename) and (
                not sdist_only or cached_type == "sdist"
            ):
                blob = self._cached_blob(sha256)
                if blob is not None:
                    self._progress(f"{cached_name}: cached sha256:{sha256}")
                    return blob, cached_name
        found = select_file(
            self._index(name, version),
            what=what,
            sha256=sha256,
            filename=filename,
            sdist_only=sdist_only,
        )
        if not url_allowed(httpx.URL(found.url), self._base):
            raise FetchError(f"{what}: the index links {found.url}, neither https nor under it")
        blob = self._blob(found.url, sha256, found.filename, found.size)
        _write_atomic(
            record, f"{found.filename}\n{found.packagetype}\n".encode(), self._cache / "tmp"
        )
        return blob, found.filename

    def _index(self, name: str, version: str) -> list[IndexFile]:
        """Files of ``name==version``: the release endpoint, else the project's ``releases``."""
        url = str(self._base.join(f"pypi/{name}/{version}/json"))
        doc = self._get_json(url)
        if isinstance(doc, dict):
            return index_files(doc.get("urls"), url)
        # Some mirrors serve only the project document.
        project_url = str(self._base.join(f"pypi/{name}/json"))
        doc = self._get_json(project_url)
        if doc is None:
            raise FetchError(f"{name}=={version}: not found on {self._base}")
        releases = doc.get("releases") if isinstance(doc, dict) else None
        if not isinstance(releases, dict) or version not in releases:
            raise FetchError(f"{name}=={version}: no such release on {self._base}")
        return index_files(releases[version], project_url)
