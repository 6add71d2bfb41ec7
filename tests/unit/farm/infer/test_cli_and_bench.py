"""The command's argument parsing and the coverage benchmark's list and tally."""

from __future__ import annotations

from pathlib import Path

import pytest

from farm.bench.coverage import DEFAULT_LIST, Outcome, read_list, summarize
from farm.cli.infer_cmd import parse_spec, recipe_path
from farm.errors import ConfigError
from farm.infer.errors import InferError


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("tomli-w==1.1.0", ("tomli-w", "1.1.0")),
        (" typing_extensions == 4.12.2 ", ("typing_extensions", "4.12.2")),
        ("python-dateutil==2.9.0.post0", ("python-dateutil", "2.9.0.post0")),
    ],
)
def test_spec(spec: str, expected: tuple[str, str]) -> None:
    assert parse_spec(spec) == expected


@pytest.mark.parametrize("spec", ["tomli", "tomli>=1", "tomli==", "==1.0", "a b==1", "../x==1"])
def test_bad_spec(spec: str) -> None:
    with pytest.raises(InferError, match="give one release as NAME==VERSION") as caught:
        parse_spec(spec)
    assert caught.value.cause == "bad-request"


def test_recipe_path() -> None:
    assert recipe_path(Path("recipes"), "six", "1.17.0") == Path("recipes/six/1.17.0.yaml")


def test_the_shipped_list_is_long_enough_and_holds_no_shipped_recipe() -> None:
    releases = read_list(DEFAULT_LIST)
    assert len(releases) >= 50
    assert len(set(releases)) == len(releases)
    recipes = Path(__file__).resolve().parents[4] / "recipes"
    shipped = {p.parent.name.lower().replace("_", "-") for p in recipes.glob("*/*.yaml")}
    assert len(shipped) >= 10
    assert not {n.lower().replace("_", "-") for n, _ in releases} & shipped


def test_a_bad_list_line_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "list.txt"
    bad.write_text("# comment\n\nsix==1.17.0\nrequests>=2\n")
    with pytest.raises(ConfigError, match=r"list.txt:4: .*NAME==VERSION"):
        read_list(bad)
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(ConfigError, match="no name==version lines"):
        read_list(tmp_path / "empty.txt")
    with pytest.raises(ConfigError, match="cannot read the list"):
        read_list(tmp_path / "absent.txt")


def test_summary_counts_and_causes() -> None:
    outcomes = [
        Outcome("a==1", "matched", None, 10.0),
        Outcome("b==1", "matched", None, 30.0),
        Outcome("c==1", "differs", "differs:times", 50.0),
        Outcome("d==1", "failed", "not-pure", 1.0),
        Outcome("e==1", "failed", "not-pure", 2.0),
    ]
    assert summarize(outcomes) == {
        "total": 5,
        "matched": 2,
        "differs": 1,
        "failed": 2,
        "fraction_matched": 0.4,
        "median_s_per_package": 10.0,
        "causes": {"differs:times": 1, "not-pure": 2},
    }


def test_an_empty_run_matched_nothing() -> None:
    assert summarize([])["fraction_matched"] == 0.0
