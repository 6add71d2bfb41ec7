"""Fetch what a recipe pins, outside the container, verified and cached by digest.

The builder runs this before the hermetic (network-less) build step. Invariants:

- **Nothing unverified is used or kept.** A download is hashed while it streams and
  renamed into the cache only when its sha256 is the pinned one; a git export is the
  tree of exactly the pinned commit, checked by recomputing the git tree id of the
  extracted files. Any mismatch raises :class:`FetchError` and leaves nothing behind.
- **The cache is content-addressed and safe to share** between processes on one host
  (:mod:`builders.fetch.cache`): blobs live at ``blobs/sha256/<hex>`` and index
  records at ``pypi/<project>/<version>/<hex>``, each written to a temporary file and
  renamed; a git mirror per URL (``git/<sha256 of url>.git``) is fetched under a file
  lock. A cached blob is re-hashed before use, so a damaged cache is refetched, never
  trusted.
- **The tree does not depend on when or where it was fetched**: archive members keep
  their times (git trees get the commit time), modes are 0o755 / 0o644, and
  dependency files get a fixed time.
- **The network is only reached on a cache miss**, through one ``httpx.Client``
  (injectable), following redirects only to https or to the configured index.

Layout of ``dest`` after success: ``dest/src`` (the source tree) and ``dest/deps``
(the dependency files under their original names), ready to mount at ``/src`` and
``/deps``.

One module per source, in the order :meth:`Fetcher.source` tries them:
:mod:`builders.fetch.git`, :mod:`builders.fetch.url` (archives by URL, and every
download), :mod:`builders.fetch.pypi` (the PyPI source and the dependencies); all of
them keep what they fetch in :mod:`builders.fetch.cache`. :class:`Fetcher` wires them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from builders._extract import ExtractLimits
from builders.errors import FetchError
from builders.fetch.cache import FIXED_MTIME, FetchCache, mirror_name
from builders.fetch.git import GitFetcher, git_tree_id
from builders.fetch.pypi import IndexFile, PypiFetcher, index_files, normalize_project, select_file
from builders.fetch.url import UrlFetcher, human_size, url_allowed
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
        base = httpx.URL(pypi_url.rstrip("/") + "/")
        self._own_http = http is None
        self._http = http or httpx.Client(timeout=httpx.Timeout(60.0, connect=20.0))
        self._progress = progress or (lambda msg: log.info("%s", msg))
        self._limits = limits or FetchLimits()
        cache = FetchCache(cache_dir)
        self._urls = UrlFetcher(
            self._http,
            base,
            cache,
            self._progress,
            max_download=self._limits.max_download,
            max_index=self._limits.max_index,
        )
        self._git = GitFetcher(
            cache,
            self._progress,
            extract_limits=self._limits.extract,
            timeout=self._limits.git_timeout,
        )
        self._pypi = PypiFetcher(self._urls, cache, base, self._progress)

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

    def source(self, source: Source, dest: Path) -> Path:
        """Fetch, verify and extract ``source`` into ``dest/src``; return that directory.

        With a git ``subdir``, the returned directory is that subdirectory's tree.
        Raises :class:`FetchError` (and leaves no ``dest/src``) on any failure.
        """
        with _staging(dest, "src") as tree:
            if isinstance(source, GitSource):
                self._git.export(source, tree)
            elif isinstance(source, ArchiveSource):
                self._urls.archive(source, tree, self._limits.extract)
            elif isinstance(source, PypiSource):
                self._pypi.source(source, tree, self._limits.extract)
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
                blob, filename = self._pypi.file(
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

    def _blob(self, url: str, sha256: str, label: str, size: int | None) -> Path:
        """The verified blob with ``sha256``, from the cache or downloaded from ``url``."""
        return self._urls.blob(url, sha256, label, size)
