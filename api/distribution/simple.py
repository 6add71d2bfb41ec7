"""The Python package index: PEP 503 (HTML) and PEP 691 (JSON) simple repository API.

Pure rendering: a view's projects in, bytes and a content type out.

- ``/simple/`` lists projects; ``/simple/{project}/`` lists files, each linking to
  ``/artifacts/sha256/{digest}/{filename}`` (pip takes the file name from the URL's
  last path segment) with a ``#sha256=`` fragment in HTML and ``hashes`` in JSON.
- Content negotiation (PEP 691): the ``Accept`` header with q-values chooses between
  ``application/vnd.pypi.simple.v1+json``, ``application/vnd.pypi.simple.v1+html`` and
  ``text/html`` (the default when nothing is asked for); ``?format=`` with one of those
  types overrides ``Accept``. Nothing acceptable: 406.
- JSON follows API version 1.1 (PEP 700): project ``versions`` and file ``size``.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping, Sequence

from api.distribution.catalog import CatalogEntry

__all__ = [
    "HTML",
    "JSON",
    "SIMPLE_HTML",
    "choose_format",
    "file_url",
    "project_page",
    "root_page",
]

JSON = "application/vnd.pypi.simple.v1+json"
SIMPLE_HTML = "application/vnd.pypi.simple.v1+html"
HTML = "text/html"
_API_VERSION = "1.1"
_OFFERED = (JSON, SIMPLE_HTML, HTML)


def _parse_accept(header: str) -> list[tuple[str, float]]:
    """(media range, q) of each part of an ``Accept`` header."""
    out = []
    for part in header.split(","):
        fields = [f.strip() for f in part.split(";")]
        media = fields[0].lower()
        if not media:
            continue
        q = 1.0
        for param in fields[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    q = 0.0
        out.append((media, q))
    return out


def _quality(ranges: Sequence[tuple[str, float]], offered: str) -> tuple[float, int]:
    """(q, specificity) of ``offered``: the q of its most specific matching range
    (2 exact, 1 ``type/*``, 0 ``*/*``); (0, -1) when none matches."""
    best = (0.0, -1)
    major = offered.split("/", 1)[0]
    for media, q in ranges:
        if media == offered:
            spec = 2
        elif media == major + "/*":
            spec = 1
        elif media == "*/*":
            spec = 0
        else:
            continue
        if spec > best[1]:
            best = (q, spec)
    return best


def choose_format(accept: str | None, format_param: str | None) -> str | None:
    """The content type to answer with, or None when nothing offered is acceptable.

    Highest q wins; between equals an exactly named type beats a wildcard match, JSON
    is preferred among exactly named ones and HTML among wildcard matches (so
    ``*/*`` or no header gets the PEP 503 page)."""
    if format_param:
        return format_param if format_param in _OFFERED else None
    if not accept:
        return HTML
    ranges = _parse_accept(accept)
    chosen: str | None = None
    best: tuple[float, int, int] | None = None
    for rank, offered in enumerate((HTML, SIMPLE_HTML, JSON)):
        q, spec = _quality(ranges, offered)
        if q <= 0:
            continue
        key = (q, int(spec == 2), rank if spec == 2 else -rank)
        if best is None or key > best:
            best, chosen = key, offered
    return chosen


def file_url(entry: CatalogEntry) -> str:
    """The artifact's URL on the node, ending in its file name."""
    return f"/artifacts/sha256/{entry.sha256}/{entry.filename}"


def _dump(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def _html(title: str, body: Iterable[str]) -> bytes:
    lines = [
        "<!DOCTYPE html>",
        "<html>",
        "<head>",
        f'<meta name="pypi:repository-version" content="{_API_VERSION}">',
        f"<title>{html.escape(title)}</title>",
        "</head>",
        "<body>",
        *body,
        "</body>",
        "</html>",
        "",
    ]
    return "\n".join(lines).encode()


def root_page(projects: Mapping[str, object], fmt: str) -> bytes:
    """The project list."""
    names = sorted(projects)
    if fmt == JSON:
        return _dump(
            {"meta": {"api-version": _API_VERSION}, "projects": [{"name": n} for n in names]}
        )
    return _html(
        "Simple index",
        (f'<a href="/simple/{html.escape(n)}/">{html.escape(n)}</a><br>' for n in names),
    )


def _version_of(entry: CatalogEntry) -> str:
    return entry.version


def project_page(project: str, files: Sequence[CatalogEntry], fmt: str) -> bytes:
    """One project's files (``project`` normalized)."""
    if fmt == JSON:
        return _dump(
            {
                "meta": {"api-version": _API_VERSION},
                "name": project,
                "versions": sorted({_version_of(e) for e in files}),
                "files": [
                    {
                        "filename": e.filename,
                        "url": file_url(e),
                        "hashes": {"sha256": e.sha256},
                        "size": e.size,
                    }
                    for e in files
                ],
            }
        )
    return _html(
        f"Links for {project}",
        [f"<h1>Links for {html.escape(project)}</h1>"]
        + [
            f'<a href="{html.escape(file_url(e))}#sha256={e.sha256}">'
            f"{html.escape(e.filename)}</a><br>"
            for e in files
        ],
    )
