"""The PEP 503 / PEP 691 index: content negotiation and what the pages hold."""

from __future__ import annotations

import json

import pytest

from api.distribution.catalog import CatalogEntry, normalize_name
from api.distribution.node import dist_project
from api.distribution.simple import HTML, JSON, SIMPLE_HTML, choose_format, project_page, root_page

PIP = f"{JSON}, {SIMPLE_HTML}; q=0.1, {HTML}; q=0.01"


@pytest.mark.parametrize(
    ("accept", "fmt", "expected"),
    [
        (None, None, HTML),
        ("*/*", None, HTML),
        ("text/*", None, HTML),
        (PIP, None, JSON),
        (JSON, None, JSON),
        (SIMPLE_HTML, None, SIMPLE_HTML),
        (f"{JSON}; q=0.5, {HTML}", None, HTML),
        (f"{JSON}; q=0, */*", None, HTML),
        (f"{JSON}, */*", None, JSON),
        ("application/*", None, SIMPLE_HTML),
        ("image/png", None, None),
        (f"{JSON}; q=0", None, None),
        ("text/html", JSON, JSON),
        (None, "application/xml", None),
    ],
)
def test_choose_format(accept: str | None, fmt: str | None, expected: str | None) -> None:
    assert choose_format(accept, fmt) == expected


@pytest.mark.parametrize(
    ("name", "normal"),
    [("Friendly-Bard", "friendly-bard"), ("FRIENDLY_BARD", "friendly-bard"), ("a.-_b", "a-b")],
)
def test_normalize(name: str, normal: str) -> None:
    assert normalize_name(name) == normal


@pytest.mark.parametrize(
    ("filename", "project"),
    [
        ("MarkupSafe-3.0.2-cp311-cp311-linux_x86_64.whl", "markupsafe"),
        ("tomli-2.2.1-py3-none-any.whl", "tomli"),
        ("foo_bar-1.0-1-py3-none-any.whl", "foo-bar"),
        ("foo_bar-1.0.tar.gz", "foo-bar"),
        ("foo-1.0.zip", "foo"),
        ("notes.txt", None),
        ("bad.whl", None),
    ],
)
def test_dist_project(filename: str, project: str | None) -> None:
    assert dist_project(filename) == project


ENTRY = CatalogEntry(
    sha256="a" * 64,
    output="dist/Foo_Bar-1.0-py3-none-any.whl",
    filename="Foo_Bar-1.0-py3-none-any.whl",
    arch="amd64",
    name="foo-bar",
    version="1.0",
    size=123,
    index=7,
)


def test_pages() -> None:
    html = project_page("foo-bar", [ENTRY], HTML).decode()
    assert html.startswith("<!DOCTYPE html>")
    assert 'name="pypi:repository-version"' in html
    url = f"/artifacts/sha256/{'a' * 64}/Foo_Bar-1.0-py3-none-any.whl#sha256={'a' * 64}"
    assert f'<a href="{url}">Foo_Bar-1.0-py3-none-any.whl</a>' in html
    body = json.loads(project_page("foo-bar", [ENTRY], JSON))
    assert body["name"] == "foo-bar" and body["versions"] == ["1.0"]
    assert body["files"][0]["hashes"] == {"sha256": "a" * 64}
    assert body["files"][0]["size"] == 123
    assert json.loads(root_page({"foo-bar": ()}, JSON))["projects"] == [{"name": "foo-bar"}]
    assert '<a href="/simple/foo-bar/">foo-bar</a>' in root_page({"foo-bar": ()}, HTML).decode()
