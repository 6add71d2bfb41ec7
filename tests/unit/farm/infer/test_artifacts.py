from __future__ import annotations

import re
from pathlib import Path

import pytest

from farm.infer.artifacts import LEGACY_REQUIRES, read_sdist, read_wheel
from farm.infer.errors import InferError
from tests.unit.farm.infer.helpers import make_sdist, make_wheel


def test_wheel_generator_members_times_and_modes(tmp_path: Path) -> None:
    wheel = make_wheel(
        tmp_path / "demo-1.0-py3-none-any.whl",
        [("demo/__init__.py", b"x = 1\n", (2024, 10, 8, 11, 13, 16))],
        generator="hatchling 1.25.0",
        mode=0o755,
    )
    facts = read_wheel(wheel)
    assert facts.generator == "hatchling 1.25.0"
    assert facts.dist_info == "demo-1.0.dist-info"
    first = facts.members[0]
    assert (first.name, first.date_time, first.mode & 0o777, first.size) == (
        "demo/__init__.py",
        (2024, 10, 8, 11, 13, 16),
        0o755,
        6,
    )
    assert [m.name.rsplit("/", 1)[-1] for m in facts.members[1:]] == ["WHEEL", "METADATA", "RECORD"]


def test_a_wheel_without_generator(tmp_path: Path) -> None:
    facts = read_wheel(make_wheel(tmp_path / "w.whl", [], generator=None))
    assert facts.generator is None


def test_not_a_wheel_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad-1.0-py3-none-any.whl"
    bad.write_bytes(b"not a zip")
    with pytest.raises(
        InferError, match=re.escape("bad-1.0-py3-none-any.whl: not a readable wheel")
    ):
        read_wheel(bad)


def test_sdist_mtimes_top_stripped_and_build_system(tmp_path: Path) -> None:
    sdist = make_sdist(
        tmp_path / "demo-1.0.tar.gz",
        [("src/demo/__init__.py", b"x = 1\n", 1_728_385_996), ("PKG-INFO", b"", 1_728_386_000)],
        pyproject='[build-system]\nrequires = ["flit_core>=3.2,<4"]\n'
        'build-backend = "flit_core.buildapi"\n',
    )
    facts = read_sdist(sdist)
    assert facts.mtimes["src/demo/__init__.py"] == 1_728_385_996
    assert facts.newest_mtime == 1_728_386_000
    assert facts.build_system.requires == ("flit_core>=3.2,<4",)
    assert facts.build_system.backend == "flit_core.buildapi"
    assert facts.build_system.declared and not facts.has_setup_py


def test_sdist_without_build_system_gets_pips_legacy_default(tmp_path: Path) -> None:
    sdist = make_sdist(tmp_path / "demo-1.0.tar.gz", [("setup.py", b"", 1)], pyproject="[tool.x]\n")
    facts = read_sdist(sdist)
    assert facts.build_system.requires == LEGACY_REQUIRES
    assert not facts.build_system.declared and facts.has_setup_py


def test_sdist_with_bad_pyproject_is_a_clear_error(tmp_path: Path) -> None:
    sdist = make_sdist(tmp_path / "demo-1.0.tar.gz", [], pyproject="[build-system\n")
    with pytest.raises(InferError, match=r"pyproject\.toml is not TOML"):
        read_sdist(sdist)


def test_not_an_sdist_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "demo-1.0.tar.gz"
    bad.write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(InferError, match=re.escape("demo-1.0.tar.gz: not a readable sdist")):
        read_sdist(bad)
