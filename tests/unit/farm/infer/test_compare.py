from __future__ import annotations

from pathlib import Path

from farm.infer.compare import diff_wheels
from tests.unit.farm.infer.helpers import make_wheel

T1 = (2024, 1, 1, 0, 0, 0)
T2 = (2024, 1, 1, 0, 0, 2)


def test_equal_wheels_have_no_difference(tmp_path: Path) -> None:
    a = make_wheel(tmp_path / "a.whl", [("demo/a.py", b"a", T1)])
    b = make_wheel(tmp_path / "a2.whl", [("demo/a.py", b"a", T1)])
    diff = diff_wheels(a, b, "a2.whl")
    assert diff.differing == () and diff.score == 0


def test_times_content_missing_and_order_are_told_apart(tmp_path: Path) -> None:
    up = make_wheel(
        tmp_path / "up.whl",
        [("demo/a.py", b"a", T1), ("demo/b.py", b"b", T1), ("demo/c.py", b"c", T1)],
    )
    re_ = make_wheel(
        tmp_path / "re.whl",
        [("demo/b.py", b"B", T1), ("demo/a.py", b"a", T2), ("demo/d.py", b"d", T1)],
    )
    diff = diff_wheels(up, re_, "re.whl")
    assert diff.only_upstream == ("demo/c.py",)
    assert diff.only_rebuilt == ("demo/d.py",)
    assert diff.content == ("demo/b.py",)
    assert diff.times == ("demo/a.py",)
    assert diff.order_differs
    assert diff.cause == "differs:members"
    assert diff.summary().startswith("4 of 6 members differ")


def test_only_times_differ(tmp_path: Path) -> None:
    up = make_wheel(tmp_path / "x.whl", [("demo/a.py", b"a", T1)])
    (tmp_path / "r").mkdir()
    re_ = make_wheel(tmp_path / "r" / "x.whl", [("demo/a.py", b"a", T2)])
    diff = diff_wheels(up, re_)
    assert diff.cause == "differs:times" and not diff.filename_differs
    assert diff.times == ("demo/a.py",)


def test_a_different_file_name_counts(tmp_path: Path) -> None:
    up = make_wheel(tmp_path / "Demo-1.0-py3-none-any.whl", [("demo/a.py", b"a", T1)])
    re_ = make_wheel(tmp_path / "demo-1.0-py3-none-any.whl", [("demo/a.py", b"a", T1)])
    diff = diff_wheels(up, re_)
    assert diff.filename_differs and diff.cause == "differs:filename" and diff.score == 1
