"""diffoscope on real differing wheels, with its limits and failure modes."""

from __future__ import annotations

import json
import shutil
import time
import zipfile
from pathlib import Path

import pytest

from farm.diffoscope import DiffoscopeError, DiffoscopeLimits, run_diffoscope

needs_diffoscope = pytest.mark.usefixtures("_diffoscope_installed")


@pytest.fixture
def _diffoscope_installed() -> None:
    assert shutil.which("diffoscope"), "diffoscope is not installed (deploy/setup.sh installs it)"


def wheel(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("demo/__init__.py", f"VALUE = {body!r}\n")
        z.writestr("demo-1.0.dist-info/METADATA", "Name: demo\nVersion: 1.0\n")
    return path


@needs_diffoscope
def test_differing_wheels_give_html_and_json(tmp_path: Path) -> None:
    a = wheel(tmp_path / "a" / "demo-1.0-py3-none-any.whl", "built on host one")
    b = wheel(tmp_path / "b" / "demo-1.0-py3-none-any.whl", "built on host two")
    report = run_diffoscope(a, b, tmp_path / "report")
    assert report.differ
    assert "demo/__init__.py" in report.html.read_text()
    data = json.loads(report.json.read_text())
    assert "host two" in json.dumps(data["details"])


@needs_diffoscope
def test_identical_files_do_not_differ(tmp_path: Path) -> None:
    a = wheel(tmp_path / "a.whl", "same")
    report = run_diffoscope(a, a, tmp_path / "report")
    assert not report.differ


def test_missing_tool_is_a_clear_error(tmp_path: Path) -> None:
    a = wheel(tmp_path / "a.whl", "x")
    with pytest.raises(DiffoscopeError, match="not installed"):
        run_diffoscope(a, a, tmp_path / "r", executable="no-such-diffoscope-here")


def test_missing_input_is_an_error(tmp_path: Path) -> None:
    a = wheel(tmp_path / "a.whl", "x")
    with pytest.raises(DiffoscopeError, match="no such file"):
        run_diffoscope(a, tmp_path / "absent.whl", tmp_path / "r", executable="sh")


def test_timeout_kills_and_raises(tmp_path: Path) -> None:
    hang = tmp_path / "fake-diffoscope"
    hang.write_text("#!/bin/sh\nsleep 30 &\nsleep 30\n")
    hang.chmod(0o755)
    a = wheel(tmp_path / "a.whl", "x")
    start = time.monotonic()
    with pytest.raises(DiffoscopeError, match="did not finish within"):
        run_diffoscope(a, a, tmp_path / "r", DiffoscopeLimits(timeout=0.5), executable=str(hang))
    assert time.monotonic() - start < 5


def test_error_exit_is_not_a_pass(tmp_path: Path) -> None:
    bad = tmp_path / "fake-diffoscope"
    bad.write_text("#!/bin/sh\necho 'boom: broken input' >&2\nexit 2\n")
    bad.chmod(0o755)
    a = wheel(tmp_path / "a.whl", "x")
    with pytest.raises(DiffoscopeError, match=r"exit 2.*boom"):
        run_diffoscope(a, a, tmp_path / "r", executable=str(bad))
