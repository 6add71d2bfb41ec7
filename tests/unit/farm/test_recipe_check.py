"""``farm recipe check``'s pure part: comparing two builds and upstream, the exit status,
and reading diffoscope's JSON; the driver with the build and diffoscope passed in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from farm.diffoscope import DiffoscopeError
from farm.recipe import Recipe, parse_recipe
from farm.recipe_check import (
    CheckResult,
    OutputComparison,
    check_file,
    check_recipe,
    compare_outputs,
    differing_members,
    exit_code,
    report_json,
    status_of,
)
from tests.unit.farm.conftest import BASE_RECIPE

A, B, U = "sha256:" + "a" * 64, "sha256:" + "b" * 64, "sha256:" + "c" * 64
OUT = "hello.txt"


def recipe(upstream: str | None = None, url: str | None = "https://example.org/h") -> Recipe:
    data: dict[str, Any] = dict(BASE_RECIPE)
    if upstream is not None:
        data["upstream"] = [{"output": OUT, "sha256": upstream.removeprefix("sha256:"), "url": url}]
    return parse_recipe(data)


@pytest.mark.parametrize(
    ("first", "second", "upstream", "status"),
    [
        ({OUT: A}, {OUT: A}, None, "verified"),
        ({OUT: A}, {OUT: A}, A, "verified"),
        ({OUT: A}, {OUT: A}, U, "differs from upstream"),
        ({OUT: A}, {OUT: B}, None, "not deterministic"),
        ({OUT: A}, {OUT: B}, A, "not deterministic"),  # matching upstream once is not enough
        ({OUT: A, "x": A}, {OUT: A}, None, "not deterministic"),  # an output in one build only
        ({}, {}, None, "failed"),  # nothing compared, nothing verified
        ({}, {}, U, "failed"),
    ],
)
def test_status_of_two_builds_and_upstream(
    first: dict[str, str], second: dict[str, str], upstream: str | None, status: str
) -> None:
    assert status_of(compare_outputs(recipe(upstream), first, second)) == status


def test_compare_lists_every_output_once_in_name_order() -> None:
    got = compare_outputs(recipe(U), {"b": A, OUT: A}, {"a": B})
    assert [o.name for o in got] == ["a", "b", OUT]
    assert got[2] == OutputComparison(OUT, A, None, U)
    assert got[2].upstream_state == "differ" and not got[2].deterministic
    assert OutputComparison("x", A, A, None).upstream_state == "none"


@pytest.mark.parametrize(
    ("statuses", "code"),
    [
        (["verified"], 0),
        (["verified", "differs from upstream"], 0),  # deterministic: reported, not refused
        (["verified", "not deterministic"], 1),
        (["failed"], 1),
        ([], 1),  # nothing checked is not a success
    ],
)
def test_exit_code_is_zero_only_when_every_recipe_is_deterministic(
    statuses: list[Any], code: int
) -> None:
    assert exit_code([CheckResult("p", "n==1", s) for s in statuses]) == code


def test_line_names_file_recipe_status_and_detail() -> None:
    assert CheckResult("r/n/1.yaml", "n==1", "verified").line() == "r/n/1.yaml: n==1: verified"
    bad = CheckResult("r/x.yaml", None, "failed", "lint: (file): no such file")
    assert bad.line() == "r/x.yaml: failed: lint: (file): no such file"


def _node(name: str, diff: str = "", details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    node: dict[str, Any] = {"source1": name, "source2": name}
    if diff:
        node["unified_diff"] = diff
    if details:
        node["details"] = details
    return node


def test_members_of_a_zip_report() -> None:
    report = _node(
        "a.whl",
        details=[
            _node("zipinfo -v {}", "@@"),
            _node("pkg/mod.py", "@@"),
            _node("pkg-1.dist-info/RECORD", "@@"),
        ],
    )
    assert differing_members(report) == (
        "pkg/mod.py",
        "pkg-1.dist-info/RECORD",
        "(archive metadata)",
    )


def test_members_look_through_a_decompression_layer() -> None:
    inner = _node("a.tar", details=[_node("file list", "@@"), _node("a/setup.py", "@@")])
    assert differing_members(_node("a.tar.gz", details=[inner])) == (
        "a/setup.py",
        "(archive metadata)",
    )


def test_a_plain_file_is_its_own_member() -> None:
    assert differing_members(_node("/tmp/x/build-1/run/out/stamp.txt", "@@ -1 +1 @@")) == (
        "stamp.txt",
    )
    assert differing_members({"source1": "a", "source2": "b"}) == ()


def test_report_json_reads_or_refuses(tmp_path: Path) -> None:
    assert report_json(tmp_path / "absent.json") is None
    (tmp_path / "r.json").write_text('{"source1": "a"}')
    assert report_json(tmp_path / "r.json") == {"source1": "a"}
    (tmp_path / "bad.json").write_text("[1]")
    with pytest.raises(DiffoscopeError, match="not a JSON object"):
        report_json(tmp_path / "bad.json")


# The driver, with fakes for the build, the download and diffoscope.


@dataclass
class FakeRun:
    ok: bool
    failure: str | None
    outputs: dict[str, Path]
    digests: dict[str, str]
    arch: str | None = "amd64"


@dataclass
class Fakes:
    digests: list[str | None]
    diffs: list[tuple[Path, Path]] = field(default_factory=list)
    fetched: list[str] = field(default_factory=list)
    diff_error: bool = False

    def build(self, recipe: Recipe, work: Path, i: int) -> FakeRun:
        digest = self.digests[i]
        if digest is None:
            return FakeRun(False, "build command exited with status 2", {}, {})
        work.mkdir(parents=True)
        (work / OUT).write_text(digest)
        return FakeRun(True, None, {OUT: work / OUT}, {OUT: digest})

    def fetch(self, url: str, sha256: str, dest: Path, max_bytes: int) -> None:
        self.fetched.append(url)
        dest.write_text("upstream")

    def diff(self, a: Path, b: Path, out: Path) -> Mapping[str, Any] | None:
        if self.diff_error:
            raise DiffoscopeError("diffoscope is not installed")
        self.diffs.append((a, b))
        return _node(str(a), details=[_node("pkg/mod.py", "@@")])


def _check(fakes: Fakes, r: Recipe, tmp_path: Path) -> CheckResult:
    return check_recipe(
        "r.yaml", r, tmp_path, build=fakes.build, fetch=fakes.fetch, diff=fakes.diff
    )


def test_driver_verified_runs_no_diffoscope(tmp_path: Path) -> None:
    fakes = Fakes([A, A])
    result = _check(fakes, recipe(A), tmp_path)
    assert (result.status, result.detail) == ("verified", "")
    assert fakes.diffs == [] and fakes.fetched == []


def test_driver_not_deterministic_diffs_build_1_with_build_2(tmp_path: Path) -> None:
    fakes = Fakes([A, B])
    result = _check(fakes, recipe(A), tmp_path)
    assert result.status == "not deterministic"
    assert fakes.diffs == [(tmp_path / "build-1" / OUT, tmp_path / "build-2" / OUT)]
    assert result.members == {OUT: ("pkg/mod.py",)}
    assert result.detail == f"{OUT} differs between the builds in pkg/mod.py"


def test_driver_differs_from_upstream_fetches_it_and_diffs(tmp_path: Path) -> None:
    fakes = Fakes([A, A])
    result = _check(fakes, recipe(U), tmp_path)
    assert result.status == "differs from upstream"
    assert fakes.fetched == ["https://example.org/h"]
    assert fakes.diffs == [(tmp_path / "upstream" / OUT, tmp_path / "build-1" / OUT)]
    assert result.detail == f"{OUT} differs from upstream in pkg/mod.py"


def test_driver_says_why_it_could_not_compare(tmp_path: Path) -> None:
    result = _check(Fakes([A, A]), recipe(U, url=None), tmp_path / "1")
    assert result.detail == f"{OUT} differs from upstream (not compared: the recipe gives no url)"
    result = _check(Fakes([A, B], diff_error=True), recipe(), tmp_path / "2")
    assert result.status == "not deterministic"
    assert "no diffoscope summary: diffoscope is not installed" in result.detail


def test_driver_a_failed_build_fails_the_recipe(tmp_path: Path) -> None:
    result = _check(Fakes([A, None]), recipe(), tmp_path)
    assert result.status == "failed"
    assert result.detail == "build 2: build command exited with status 2"


def test_check_file_lints_first_and_never_raises(tmp_path: Path) -> None:
    fakes = Fakes([A, A])
    run = {"build": fakes.build, "fetch": fakes.fetch, "diff": fakes.diff}
    missing = check_file(tmp_path / "demo" / "1.0.0.yaml", tmp_path / "w1", **run)
    assert (missing.status, missing.label) == ("failed", None)
    assert missing.detail == "lint: (file): no such file"
    bad = tmp_path / "demo" / "1.0.0.yaml"
    bad.parent.mkdir()
    bad.write_text("name: [unclosed\n")
    assert check_file(bad, tmp_path / "w2", **run).detail.startswith("lint: line 2: (yaml): ")
    bad.write_text(yaml.safe_dump(BASE_RECIPE))
    good = check_file(bad, tmp_path / "w3", **run)
    assert (good.status, good.label) == ("verified", "demo==1.0.0")
