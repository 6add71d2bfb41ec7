"""The pipeline wired with an in-memory index, local files and a rebuilder stand-in."""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

import pytest

from farm.infer.engine import infer
from farm.infer.errors import InferError
from farm.infer.ports import Rebuild
from farm.infer.writer import render_yaml
from farm.recipe import Recipe, load_recipe
from tests.unit.farm.infer.fakes import FakeIndex
from tests.unit.farm.infer.helpers import file_entry, make_sdist, make_wheel

IMAGE = "sha256:" + "1" * 64
MTIME = 1_728_385_996


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _local(offset: int) -> tuple[int, int, int, int, int, int]:
    t = time.gmtime(MTIME + offset)
    return (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec - t.tm_sec % 2)


class World:
    """demo 1.0 on an in-memory index: an sdist and a flit wheel built in UTC+05:30."""

    def __init__(self, tmp: Path, *, wheel_tag: str = "py3-none-any", sdist: bool = True) -> None:
        self.files = tmp / "files"
        self.files.mkdir()
        self.upstream = make_wheel(
            self.files / f"demo-1.0-{wheel_tag}.whl",
            [("demo/__init__.py", b"x = 1\n", _local(19800))],
            generator="flit 3.9.0",
        )
        self.sdist = make_sdist(
            self.files / "demo-1.0.tar.gz",
            [("demo/__init__.py", b"x = 1\n", MTIME)],
            pyproject='[build-system]\nrequires = ["flit_core>=3.2,<4"]\n',
        )
        self.index = FakeIndex()
        self.index.add("flit-core", "3.9.0", "2023-04-01T00:00:00Z")
        entries = [
            file_entry(self.upstream.name, sha=_sha(self.upstream), uploaded="2024-10-08T12:00:00Z")
        ]
        if sdist:
            entries.append(
                file_entry(self.sdist.name, sha=_sha(self.sdist), uploaded="2024-10-08T12:00:01Z")
            )
        self.index.docs["demo"] = entries
        self.rebuilt: list[Recipe] = []

    def download(self, url: str, sha256: str, label: str, size: int | None) -> Path:
        path = self.files / label
        assert _sha(path) == sha256
        return path

    def rebuild(self, recipe: Recipe, work: Path) -> Rebuild:
        """Upstream's bytes only for flit_core 3.9.0, SDE unset, TZ=UTC+05:30."""
        self.rebuilt.append(recipe)
        work.mkdir(parents=True)
        out = work / self.upstream.name
        env = recipe.build.env
        right = (
            "env -u SOURCE_DATE_EPOCH" in recipe.build.command
            and env["TZ"] == "<+0530>-5:30"
            and [d.version for d in recipe.build.dependencies] == ["3.9.0"]
        )
        if right:
            shutil.copyfile(self.upstream, out)
        else:
            make_wheel(out, [("demo/__init__.py", b"x = 1\n", _local(0))], generator="flit 3.9.0")
        return Rebuild(True, None, out, _sha(out), 1.0)

    def infer(self, tmp: Path, max_attempts: int = 4):  # type: ignore[no-untyped-def]
        return infer(
            "demo",
            "1.0",
            index=self.index,
            download=self.download,
            rebuild=self.rebuild,
            image=IMAGE,
            work=tmp / "work",
            max_attempts=max_attempts,
        )


def test_the_matching_candidate_is_found_and_written(tmp_path: Path) -> None:
    world = World(tmp_path)
    result = world.infer(tmp_path)
    assert result.matched and result.cause is None
    assert len(result.attempts) == 1  # the zip times said UTC+05:30 and no SDE
    recipe = result.recipe
    assert recipe.build.env["TZ"] == "<+0530>-5:30"
    assert [(d.name, d.version) for d in recipe.build.dependencies] == [("flit-core", "3.9.0")]
    assert recipe.outputs[0].path == "demo-1.0-py3-none-any.whl"
    assert recipe.upstream[0].sha256 == _sha(world.upstream)
    assert recipe.reproducibility is not None
    assert recipe.reproducibility.startswith("Matches upstream bit for bit")
    assert "shifted by +5.5 h" in recipe.reproducibility
    written = tmp_path / "demo" / "1.0.yaml"
    written.parent.mkdir()
    written.write_text(render_yaml(recipe))
    assert load_recipe(written).digest == recipe.digest
    assert not any((tmp_path / "work").iterdir())  # attempts cleaned up


def test_no_match_reports_the_closest_attempt(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.index.docs["flit-core"].clear()
    world.index.add("flit-core", "3.8.0", "2023-01-01T00:00:00Z")
    world.index.add("flit-core", "3.9.0", "2023-04-01T00:00:00Z")

    def never(recipe: Recipe, work: Path) -> Rebuild:
        work.mkdir(parents=True)
        out = work / world.upstream.name
        make_wheel(out, [("demo/__init__.py", b"x = 2\n", _local(19800))], generator="flit 3.9.0")
        return Rebuild(True, None, out, _sha(out), 1.0)

    world.rebuild = never  # type: ignore[method-assign]
    result = world.infer(tmp_path)
    assert not result.matched
    assert result.cause == "differs:content"
    assert len(result.attempts) == 3
    assert result.recipe.reproducibility is not None
    assert "Does NOT match upstream" in result.recipe.reproducibility
    assert "Closest attempt: 1 of 4 members differ; content: demo/__init__.py" in (
        result.recipe.reproducibility
    )


def test_every_build_failing_is_build_failed(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.rebuild = lambda recipe, work: Rebuild(False, "exit 1", None, None, 0.5)  # type: ignore[method-assign]
    result = world.infer(tmp_path, max_attempts=2)
    assert not result.matched and result.cause == "build-failed"
    assert len(result.attempts) == 2
    assert "The closest attempt failed: exit 1" in (result.recipe.reproducibility or "")


def test_no_sdist_is_named(tmp_path: Path) -> None:
    world = World(tmp_path, sdist=False)
    with pytest.raises(InferError, match="no sdist") as caught:
        world.infer(tmp_path)
    assert caught.value.cause == "no-sdist"


def test_a_platform_wheel_is_not_pure(tmp_path: Path) -> None:
    world = World(tmp_path, wheel_tag="cp311-cp311-manylinux_2_17_x86_64")
    with pytest.raises(InferError, match="platform-specific") as caught:
        world.infer(tmp_path)
    assert caught.value.cause == "not-pure"
    assert world.rebuilt == []


def test_an_unknown_release_is_named(tmp_path: Path) -> None:
    world = World(tmp_path)
    with pytest.raises(InferError, match="no such release") as caught:
        infer(
            "demo",
            "9.9",
            index=world.index,
            download=world.download,
            rebuild=world.rebuild,
            image=IMAGE,
            work=tmp_path / "w",
        )
    assert caught.value.cause == "not-found"
