from __future__ import annotations

import pytest

from farm.infer.errors import InferError
from farm.infer.resolve import requires_dist, resolve
from tests.unit.farm.infer.fakes import FakeIndex, at


def _index() -> FakeIndex:
    idx = FakeIndex()
    idx.add("hatchling", "1.12.2", "2022-12-01T00:00:00Z", ("pathspec>=0.10", "pluggy>=1.0.0"))
    idx.add("hatchling", "1.13.0", "2023-02-01T00:00:00Z", ("pathspec>=0.10", "pluggy>=1.0.0"))
    idx.add("pathspec", "0.10.3", "2022-12-10T00:00:00Z")
    idx.add("pathspec", "0.11.0", "2023-01-20T00:00:00Z")
    idx.add(
        "pluggy", "1.0.0", "2021-08-25T00:00:00Z", ('importlib-metadata; python_version < "3.8"',)
    )
    idx.add("pluggy", "2.0.0b1", "2022-12-20T00:00:00Z")
    idx.add(
        "hatch-vcs",
        "0.3.0",
        "2022-12-03T00:00:00Z",
        ("hatchling>=1.1.0", "setuptools-scm[toml]>=6.4.0"),
    )
    idx.add(
        "setuptools-scm",
        "7.1.0",
        "2022-12-16T00:00:00Z",
        ("packaging>=20.0", 'tomli>=1.0.0; python_version < "3.11"', 'rich; extra == "rich"'),
    )
    idx.add("setuptools-scm", "8.0.0", "2023-09-01T00:00:00Z", ("packaging>=20",))
    idx.add("packaging", "22.0", "2022-12-08T00:00:00Z")
    idx.add("packaging", "23.0", "2023-01-08T00:00:00Z", requires_python=">=3.7")
    idx.add("packaging", "21.3", "2021-11-18T00:00:00Z")
    return idx


def test_as_of_upload_time_with_the_backend_pinned_exactly() -> None:
    pins = resolve(
        ["hatch-vcs"], cutoff=at("2023-01-07"), index=_index(), pins={"hatchling": "1.13.0"}
    )
    got = {p.name: p.version for p in pins}
    # hatchling 1.13.0 came after the cutoff but the Generator line says upstream had it;
    # everything else is the newest by 2023-01-07, pre-releases and py<3.11 markers left out.
    assert got == {
        "hatch-vcs": "0.3.0",
        "hatchling": "1.13.0",
        "setuptools-scm": "7.1.0",
        "pathspec": "0.10.3",
        "pluggy": "1.0.0",
        "packaging": "22.0",
    }
    assert next(p for p in pins if p.name == "hatchling").why.startswith("==1.13.0")
    assert "2023-01-07" in next(p for p in pins if p.name == "packaging").why


def test_a_later_cutoff_moves_the_floating_pins() -> None:
    pins = resolve(["hatchling"], cutoff=at("2023-03-01"), index=_index())
    assert {p.name: p.version for p in pins}["pathspec"] == "0.11.0"


def test_an_extra_pulls_in_its_dependencies() -> None:
    idx = _index()
    idx.add("rich", "12.6.0", "2022-10-02T00:00:00Z")
    pins = resolve(["setuptools-scm[rich]"], cutoff=at("2023-01-07"), index=idx)
    assert {p.name for p in pins} == {"setuptools-scm", "packaging", "rich"}


def test_requires_python_excludes_a_release() -> None:
    idx = FakeIndex()
    idx.add("demo", "2.0", "2022-01-01T00:00:00Z", requires_python=">=3.12")
    idx.add("demo", "1.0", "2021-01-01T00:00:00Z", requires_python=">=3.8")
    assert resolve(["demo"], cutoff=at("2023-01-01"), index=idx)[0].version == "1.0"


def test_only_platform_wheels_is_a_named_failure() -> None:
    idx = FakeIndex()
    idx.add("native", "1.0", "2022-01-01T00:00:00Z", tag="cp311-cp311-manylinux_2_17_x86_64")
    with pytest.raises(InferError, match="no pure-Python wheel of native") as caught:
        resolve(["native"], cutoff=at("2023-01-01"), index=idx)
    assert caught.value.cause == "resolve"


def test_a_conflict_is_reported_not_backtracked() -> None:
    idx = FakeIndex()
    idx.add("a", "1.0", "2022-01-01T00:00:00Z", ("c<2",))
    idx.add("b", "1.0", "2022-01-01T00:00:00Z", ("c>=2",))
    idx.add("c", "1.5", "2022-01-01T00:00:00Z")
    idx.add("c", "2.0", "2022-01-01T00:00:00Z")
    with pytest.raises(InferError, match=r"c==1.5 was chosen, but b==1.0 requires 'c>=2'"):
        resolve(["a", "b"], cutoff=at("2023-01-01"), index=idx)


def test_a_malformed_requirement_is_named() -> None:
    with pytest.raises(InferError, match="build requirement 'flit_core <<< 4' is malformed"):
        resolve(["flit_core <<< 4"], cutoff=at("2023-01-01"), index=FakeIndex())


def test_requires_dist_skips_malformed_lines() -> None:
    text = "Name: x\nRequires-Dist: a>=1\nRequires-Dist: !!bad\nRequires-Dist: b; extra == 'z'\n"
    assert [str(r) for r in requires_dist(text)] == ["a>=1", 'b; extra == "z"']
