from __future__ import annotations

from datetime import UTC, datetime

import pytest
from packaging.version import Version

from farm.infer.errors import InferError
from farm.infer.index import parse_project, parse_upload_time
from tests.unit.farm.infer.helpers import file_entry


def _page() -> dict[str, object]:
    return {
        "name": "Demo_Pkg",
        "meta": {"api-version": "1.1"},
        "files": [
            file_entry("demo_pkg-1.0.tar.gz", uploaded="2023-05-01T10:00:00.5Z"),
            file_entry("demo_pkg-1.0-py3-none-any.whl", uploaded="2023-05-01T10:00:01Z"),
            file_entry("demo_pkg-1.1-cp311-cp311-manylinux_2_17_x86_64.whl"),
            file_entry("demo_pkg-2.0-py3-none-any.whl", uploaded="2024-02-01T00:00:00Z"),
            file_entry("demo_pkg-2.1-py3-none-any.whl", uploaded=None),
            file_entry("demo_pkg-3.0-py3-none-any.whl", yanked=True),
            file_entry("not-a-distribution.exe"),
            {"filename": "demo_pkg-0.1.tar.gz", "url": "x"},  # no sha256: skipped
            file_entry("demo_pkg-0.9.tar.gz", url="../../packages/demo_pkg-0.9.tar.gz"),
        ],
    }


def test_files_versions_kinds_and_times() -> None:
    project = parse_project(_page(), "https://pypi.example/simple/demo-pkg/")
    assert project.name == "demo-pkg"
    names = [f.filename for f in project.files]
    assert "not-a-distribution.exe" not in names and "demo_pkg-0.1.tar.gz" not in names
    release = project.release("1.0")
    assert [(f.kind, f.pure) for f in release] == [("sdist", False), ("wheel", True)]
    assert release[0].upload_time == datetime(2023, 5, 1, 10, 0, 0, 500000, tzinfo=UTC)
    assert release[1].metadata_sha256 == "b" * 64
    platform = project.release("1.1")[0]
    assert platform.kind == "wheel" and not platform.pure
    old = project.release("0.9")[0]
    assert old.url == "https://pypi.example/packages/demo_pkg-0.9.tar.gz"


def test_as_of_keeps_only_files_uploaded_by_then_and_not_yanked() -> None:
    project = parse_project(_page(), "https://pypi.example/simple/demo-pkg/")
    then = project.as_of(datetime(2023, 6, 1, tzinfo=UTC))
    assert {str(f.version) for f in then.files} == {"1.0"}  # 0.9 and 1.1: 2024-01-01
    later = project.as_of(datetime(2030, 1, 1, tzinfo=UTC))
    assert Version("2.1") not in {f.version for f in later.files}  # no upload time: unknown
    assert Version("3.0") not in {f.version for f in later.files}  # yanked


@pytest.mark.parametrize("doc", [None, [], {"files": "x"}, {"name": "x"}])
def test_a_page_that_is_not_pep_691_is_refused(doc: object) -> None:
    with pytest.raises(InferError, match="not a PEP 691 project page"):
        parse_project(doc, "https://pypi.example/simple/x/")


def test_a_bad_version_request_is_refused() -> None:
    project = parse_project(_page(), "https://pypi.example/simple/demo-pkg/")
    with pytest.raises(InferError, match="not a PEP 440 version"):
        project.release("not a version!")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-10-08T11:13:16.123Z", datetime(2024, 10, 8, 11, 13, 16, 123000, tzinfo=UTC)),
        ("2024-10-08T13:13:16+02:00", datetime(2024, 10, 8, 11, 13, 16, tzinfo=UTC)),
        ("garbage", None),
        (None, None),
        ("", None),
    ],
)
def test_upload_time(value: object, expected: datetime | None) -> None:
    assert parse_upload_time(value) == expected
