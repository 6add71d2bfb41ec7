from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from farm.infer.index import parse_project
from farm.infer.resolve import Pin
from farm.infer.strategies import Candidate
from farm.infer.writer import build_command, make_recipe, render_yaml, reproducibility_text
from farm.recipe import load_recipe
from tests.unit.farm.infer.helpers import file_entry

CAND = Candidate(
    "flit_core, SOURCE_DATE_EPOCH unset, TZ=UTC",
    (),
    {"flit_core": "3.9.0"},
    unset_sde=True,
    sde=1_728_385_996,
    tz="UTC",
    why=("flit_core==3.9.0 (WHEEL: Generator: flit 3.9.0)", "SOURCE_DATE_EPOCH unset"),
)


def _files():  # type: ignore[no-untyped-def]
    page = parse_project(
        {
            "name": "demo",
            "files": [
                file_entry("demo-1.0.tar.gz", sha="1" * 64),
                file_entry("demo-1.0-py3-none-any.whl", sha="2" * 64),
                file_entry("flit_core-3.9.0-py3-none-any.whl", sha="3" * 64),
            ],
        },
        "https://x/simple/demo/",
    )
    return page.files


def test_command_shape() -> None:
    assert "env -u SOURCE_DATE_EPOCH /tmp/venv/bin/python -m pip wheel" in build_command(CAND, True)
    fixed = Candidate("x", (), {}, unset_sde=False, sde=1, tz="UTC")
    text = build_command(fixed, False)
    assert "env -u" not in text and "pip install" not in text
    assert text.startswith("umask 022\n")


def test_the_yaml_round_trips_to_the_same_recipe(tmp_path: Path) -> None:
    sdist, wheel, flit = _files()
    pins = [Pin("flit-core", "3.9.0", flit, "==3.9.0, as upstream's WHEEL Generator line says")]
    text = reproducibility_text(
        candidate=CAND,
        pins=pins,
        upstream_sha256=wheel.sha256,
        cutoff=datetime(2024, 10, 8, tzinfo=UTC),
        matched=True,
        attempts=1,
        diff=None,
    )
    recipe = make_recipe(
        name="demo",
        version="1.0",
        sdist=sdist,
        wheel=wheel,
        image="sha256:" + "0" * 64,
        candidate=CAND,
        pins=pins,
        output=wheel.filename,
        reproducibility=text,
    )
    path = tmp_path / "demo" / "1.0.yaml"
    path.parent.mkdir()
    path.write_text(render_yaml(recipe))
    again = load_recipe(path)
    assert again.digest == recipe.digest
    assert again.build.env["SOURCE_DATE_EPOCH"] == "1728385996"
    assert again.source.sha256 == "1" * 64  # type: ignore[union-attr]
    assert again.upstream[0].sha256 == "2" * 64
    assert "flit_core==3.9.0" in (again.reproducibility or "")
    assert "the sdist's newest file time" in (again.reproducibility or "")
    assert path.read_text().startswith("# demo 1.0: rebuilt from the sdist on PyPI")
