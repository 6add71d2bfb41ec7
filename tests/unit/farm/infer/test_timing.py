from __future__ import annotations

import time
from pathlib import Path

import pytest

from farm.infer.artifacts import read_sdist, read_wheel
from farm.infer.timing import fixed_tz, infer_timing, match_member
from tests.unit.farm.infer.helpers import make_sdist, make_wheel

MTIME = 1_728_385_997  # 2024-10-08 11:13:17 UTC (odd: zip times keep even seconds)


def _local(epoch: int, offset: int) -> tuple[int, int, int, int, int, int]:
    t = time.gmtime(epoch + offset)
    return (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec - t.tm_sec % 2)


def _facts(tmp_path: Path, offset: int, *, generated: tuple[int, ...] = (2016, 1, 1, 0, 0, 0)):  # type: ignore[no-untyped-def]
    files = [("demo/__init__.py", MTIME), ("demo/core.py", MTIME - 86400 * 200)]
    wheel = make_wheel(
        tmp_path / "demo-1.0-py3-none-any.whl",
        [(name, b"x", _local(mtime, offset)) for name, mtime in files],
        wheel_time=generated,  # type: ignore[arg-type]
    )
    sdist = make_sdist(
        tmp_path / "demo-1.0.tar.gz", [(f"src/{name}", b"x", mtime) for name, mtime in files]
    )
    return read_wheel(wheel), read_sdist(sdist)


@pytest.mark.parametrize(
    ("offset", "tz"),
    [
        (0, "UTC"),
        (19800, "<+0530>-5:30"),
        (-5 * 3600, "<-0500>5:00"),
        (3600 + 1800 + 900 * 0, "<+0130>-1:30"),
        (12 * 3600 + 2700, "<+1245>-12:45"),
    ],
)
def test_fixed_tz_is_posix_with_the_sign_reversed(offset: int, tz: str) -> None:
    assert fixed_tz(offset) == tz


def test_member_matched_under_a_src_prefix() -> None:
    names = {"src/demo/a.py", "tests/demo/a.py2", "demo/a.pyi"}
    assert match_member("demo/a.py", names) == "src/demo/a.py"
    assert match_member("demo-1.0.dist-info/METADATA", names) is None


@pytest.mark.parametrize(("offset", "tz"), [(0, "UTC"), (19800, "<+0530>-5:30")])
def test_zip_times_against_mtimes_give_the_offset(tmp_path: Path, offset: int, tz: str) -> None:
    timing = infer_timing(*_facts(tmp_path, offset))
    assert timing.tz_candidates[0].tz == tz
    assert timing.offsets == {offset: 2}
    assert timing.matched == 2
    assert timing.dist_info_fixed_2016


def test_generated_files_at_another_time_are_not_flits_2016(tmp_path: Path) -> None:
    timing = infer_timing(*_facts(tmp_path, 0, generated=(2024, 10, 8, 12, 0, 0)))
    assert not timing.dist_info_fixed_2016


def test_two_offsets_an_hour_apart_point_at_a_dst_zone(tmp_path: Path) -> None:
    # A Berlin release manager: a summer file at UTC+2, a winter file at UTC+1.
    summer, winter = 1_720_000_000, 1_705_000_000
    wheel = make_wheel(
        tmp_path / "demo-1.0-py3-none-any.whl",
        [("demo/a.py", b"a", _local(summer, 7200)), ("demo/b.py", b"b", _local(winter, 3600))],
    )
    sdist = make_sdist(
        tmp_path / "demo-1.0.tar.gz", [("demo/a.py", b"a", summer), ("demo/b.py", b"b", winter)]
    )
    timing = infer_timing(read_wheel(wheel), read_sdist(sdist))
    assert timing.tz_candidates[0].tz == "CET-1CEST,M3.5.0,M10.5.0/3"
    assert "Europe/Berlin" in timing.tz_candidates[0].why


def test_one_common_time_is_the_sde_candidate(tmp_path: Path) -> None:
    wheel = make_wheel(
        tmp_path / "demo-1.0-py3-none-any.whl",
        [("demo/a.py", b"a", (2020, 2, 2, 0, 0, 0))],
        wheel_time=(2020, 2, 2, 0, 0, 0),
        generator="hatchling 1.12.2",
    )
    sdist = make_sdist(tmp_path / "demo-1.0.tar.gz", [("demo/a.py", b"a", MTIME)])
    timing = infer_timing(read_wheel(wheel), read_sdist(sdist))
    assert timing.common_epoch == 1_580_601_600
    assert timing.common_share == 1.0
    assert [c.tz for c in timing.tz_candidates] == ["UTC"]
