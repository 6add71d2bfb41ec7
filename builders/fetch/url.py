"""Fetching over HTTP: redirects followed only to https or under the index, bounded
JSON documents, and downloads hashed while they stream and kept only when their
sha256 is the pinned one (also the ``archive`` source: a pinned tarball or zip by URL).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

import httpx

from builders._extract import ExtractLimits, extract_archive
from builders.errors import FetchError
from builders.fetch.cache import FetchCache
from farm.recipe import ArchiveSource

__all__ = ["UrlFetcher", "human_size", "url_allowed"]

_CHUNK = 1 << 16
_MAX_REDIRECTS = 8


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


class UrlFetcher:
    """GETs through one ``httpx.Client``; verified downloads land in the cache."""

    def __init__(
        self,
        http: httpx.Client,
        base: httpx.URL,
        cache: FetchCache,
        progress: Callable[[str], None],
        *,
        max_download: int,
        max_index: int,
    ) -> None:
        self._http = http
        self._base = base
        self._cache = cache
        self._progress = progress
        self._max_download = max_download
        self._max_index = max_index

    def archive(self, source: ArchiveSource, tree: Path, limits: ExtractLimits) -> None:
        """Fetch the pinned archive (or take it from the cache) and extract it into ``tree``."""
        label = source.url.rstrip("/").rsplit("/", 1)[-1] or source.url
        blob = self.blob(source.url, source.sha256, label, None)
        self._progress(f"extracting {label}")
        extract_archive(blob, tree, strip_components=source.strip_components, limits=limits)

    @contextlib.contextmanager
    def get(self, url: str) -> Iterator[httpx.Response]:
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

    def get_json(self, url: str) -> object | None:
        """The JSON document at ``url``, or None on 404."""
        with self.get(url) as response:
            if response.status_code == 404:
                return None
            if response.status_code != 200:
                raise FetchError(f"{url}: HTTP {response.status_code}")
            body = bytearray()
            try:
                for chunk in response.iter_raw(_CHUNK):
                    body += chunk
                    if len(body) > self._max_index:
                        raise FetchError(f"{url}: more than {self._max_index} bytes")
            except httpx.HTTPError as exc:
                raise FetchError(f"{url}: {type(exc).__name__}: {exc}") from None
        try:
            return cast(object, json.loads(body))
        except ValueError:
            raise FetchError(f"{url}: not JSON") from None

    def blob(self, url: str, sha256: str, label: str, size: int | None) -> Path:
        """The verified blob with ``sha256``, from the cache or downloaded from ``url``."""
        cached = self._cache.cached_blob(sha256)
        if cached is not None:
            self._progress(f"{label}: cached sha256:{sha256}")
            return cached
        cap = self._max_download
        fd, tmp_name = tempfile.mkstemp(dir=self._cache.tmp_dir, prefix=f"{sha256[:16]}.")
        tmp = Path(tmp_name)
        try:
            h = hashlib.sha256()
            n = 0
            with os.fdopen(fd, "wb") as out, self.get(url) as response:
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
            path = self._cache.publish_blob(tmp, sha256)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._progress(f"{label}: verified sha256:{sha256}")
        return path
