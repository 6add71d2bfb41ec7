"""The PyPI source and build dependencies: files found through the PyPI JSON API by
their pinned sha256 (and file name), remembered in the cache under what the index
called them, so the answer does not depend on whether the cache is warm.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from builders._extract import ExtractLimits, extract_archive
from builders.errors import FetchError
from builders.fetch.cache import FetchCache
from builders.fetch.url import UrlFetcher, url_allowed
from farm.recipe import PypiSource

__all__ = ["IndexFile", "PypiFetcher", "index_files", "normalize_project", "select_file"]

_FILENAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+!-]*$")


@dataclass(frozen=True)
class IndexFile:
    """One file of a release as the PyPI JSON API lists it."""

    filename: str
    url: str
    sha256: str
    size: int | None
    packagetype: str


def normalize_project(name: str) -> str:
    """PEP 503 normalized project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


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


class PypiFetcher:
    """Files of PyPI releases, through the index at ``base``, verified and cached."""

    def __init__(
        self,
        urls: UrlFetcher,
        cache: FetchCache,
        base: httpx.URL,
        progress: Callable[[str], None],
    ) -> None:
        self._urls = urls
        self._cache = cache
        self._base = base
        self._progress = progress

    def source(self, source: PypiSource, tree: Path, limits: ExtractLimits) -> None:
        """Fetch the pinned sdist (or take it from the cache) and extract it into ``tree``."""
        blob, found = self.file(
            source.name, source.version, source.sha256, source.filename, sdist_only=True
        )
        self._progress(f"extracting {found}")
        extract_archive(blob, tree, strip_components=1, limits=limits)

    def _record_path(self, name: str, version: str, sha256: str) -> Path:
        return self._cache.root / "pypi" / normalize_project(name) / version / sha256

    def file(
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
                blob = self._cache.cached_blob(sha256)
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
        blob = self._urls.blob(found.url, sha256, found.filename, found.size)
        self._cache.write_record(record, f"{found.filename}\n{found.packagetype}\n".encode())
        return blob, found.filename

    def _index(self, name: str, version: str) -> list[IndexFile]:
        """Files of ``name==version``: the release endpoint, else the project's ``releases``."""
        url = str(self._base.join(f"pypi/{name}/{version}/json"))
        doc = self._urls.get_json(url)
        if isinstance(doc, dict):
            return index_files(doc.get("urls"), url)
        # Some mirrors serve only the project document.
        project_url = str(self._base.join(f"pypi/{name}/json"))
        doc = self._urls.get_json(project_url)
        if doc is None:
            raise FetchError(f"{name}=={version}: not found on {self._base}")
        releases = doc.get("releases") if isinstance(doc, dict) else None
        if not isinstance(releases, dict) or version not in releases:
            raise FetchError(f"{name}=={version}: no such release on {self._base}")
        return index_files(releases[version], project_url)
