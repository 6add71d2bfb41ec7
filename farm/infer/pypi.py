"""The PyPI simple API over HTTP (PEP 691 JSON, PEP 700 upload times, PEP 658 metadata).

The I/O edge of the index: one ``httpx.Client`` (injectable), pages memoised for the
life of the object, core metadata fetched through the verified :class:`Downloader`
(``url + '.metadata'`` pinned by the page's hash), or read from the wheel itself when
the index serves none. HTTP failures become :class:`~farm.infer.errors.InferError`.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import httpx
from packaging.utils import canonicalize_name

from farm.infer.errors import InferError
from farm.infer.index import IndexFile, ProjectIndex, parse_project
from farm.infer.ports import Downloader

__all__ = ["SIMPLE_JSON", "SimpleIndex"]

SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
_MAX_PAGE = 64 * 2**20


class SimpleIndex:
    """Project pages of the index at ``base_url`` (e.g. ``https://pypi.org``)."""

    def __init__(self, http: httpx.Client, base_url: str, download: Downloader) -> None:
        self._http = http
        self._base = httpx.URL(base_url.rstrip("/") + "/")
        self._download = download
        self._pages: dict[str, ProjectIndex] = {}

    def project(self, name: str) -> ProjectIndex:
        """Every file of ``name``; InferError("not-found") if the index has no such project."""
        key = canonicalize_name(name)
        if key in self._pages:
            return self._pages[key]
        url = str(self._base.join(f"simple/{key}/"))
        try:
            response = self._http.get(url, headers={"Accept": SIMPLE_JSON}, follow_redirects=True)
        except httpx.HTTPError as exc:
            raise InferError(f"{url}: {type(exc).__name__}: {exc}", "index") from None
        if response.status_code == 404:
            raise InferError(f"{name}: no such project on {self._base}", "not-found")
        if response.status_code != 200:
            raise InferError(f"{url}: HTTP {response.status_code}", "index")
        if len(response.content) > _MAX_PAGE:
            raise InferError(f"{url}: page larger than {_MAX_PAGE} bytes", "index")
        if "json" not in response.headers.get("content-type", ""):
            raise InferError(f"{url}: the index did not answer in PEP 691 JSON", "index")
        try:
            doc = json.loads(response.content)
        except ValueError:
            raise InferError(f"{url}: not JSON", "index") from None
        page = parse_project(doc, str(response.url))
        self._pages[key] = page
        return page

    def metadata(self, file: IndexFile) -> str:
        """The core metadata of a wheel, verified by digest."""
        if file.metadata_sha256:
            path = self._download(
                file.url + ".metadata", file.metadata_sha256, file.filename + ".metadata", None
            )
            return path.read_text(encoding="utf-8", errors="replace")
        wheel = self._download(file.url, file.sha256, file.filename, file.size)
        return read_wheel_metadata(wheel, file.filename)


def read_wheel_metadata(path: Path, label: str) -> str:
    """``*.dist-info/METADATA`` of a wheel file."""
    try:
        with zipfile.ZipFile(path) as zf:
            for name in zf.namelist():
                parts = name.split("/")
                if len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] == "METADATA":
                    return zf.read(name).decode("utf-8", "replace")
    except (zipfile.BadZipFile, OSError) as exc:
        raise InferError(f"{label}: not a readable wheel ({exc})", "bad-wheel") from None
    raise InferError(f"{label}: no .dist-info/METADATA", "bad-wheel")
