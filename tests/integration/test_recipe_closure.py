"""``farm recipe new -r requirements.txt`` against the real PyPI and real rebuilds.

webargs 8.7.1's closure for the builder image is webargs, marshmallow and packaging; with
the last two already in the recipe repository only webargs is inferred (and rebuilt to
upstream's bytes), and PyYAML, which publishes only platform wheels, is skipped with
its cause. The table names every project and the command exits 0.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from farm.recipe import load_recipe
from farm.recipe_lint import lint_paths

pytestmark = [pytest.mark.network, pytest.mark.docker, pytest.mark.image, pytest.mark.slow]

FARM = Path(sys.executable).with_name("farm")
SHIPPED = Path(__file__).resolve().parents[2] / "recipes"


def test_a_closure_is_inferred_skipping_what_exists_and_what_is_not_pure(
    tmp_path: Path, builder_image: str
) -> None:
    out = tmp_path / "recipes"
    for name, version in (("marshmallow", "4.4.0"), ("packaging", "26.4")):
        (out / name).mkdir(parents=True)
        shutil.copy(SHIPPED / name / f"{version}.yaml", out / name / f"{version}.yaml")
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("# an application and a native library\nwebargs==8.7.1\nPyYAML==6.0.2\n")
    proc = subprocess.run(
        [
            str(FARM), "recipe", "new", "-r", str(reqs), "--out", str(out),
            "--cache", str(tmp_path / "cache"), "--image", builder_image,
        ],
        capture_output=True, text=True, timeout=900, check=False,
        env={**os.environ, "COLUMNS": "250"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    rows = {
        line.split()[0]: line.split()[1:] for line in proc.stdout.splitlines()[2:] if line.strip()
    }
    assert rows["webargs"][:4] == ["8.7.1", "flit_core", "3.12.0", "matched"], proc.stdout
    assert rows["pyyaml"][:2] == ["6.0.2", "skipped"]
    assert rows["marshmallow"][:2] == ["4.4.0", "skipped"]
    assert rows["packaging"][:2] == ["26.4", "skipped"]
    assert "not-pure: not pure Python, skipped: pyyaml==6.0.2 has only platform wheels" in (
        " ".join(proc.stdout.split())
    )
    assert "1 matched, 0 differs, 3 skipped, 0 failed" in proc.stderr
    written = load_recipe(out / "webargs" / "8.7.1.yaml")
    assert written.reproducibility is not None
    assert written.reproducibility.startswith("Matches upstream bit for bit")
    assert written == load_recipe(SHIPPED / "webargs" / "8.7.1.yaml")
    recipes, problems = lint_paths([out])
    assert problems == [] and len(recipes) == 3
