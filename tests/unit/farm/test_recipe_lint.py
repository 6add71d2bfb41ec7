"""``farm recipe lint``: problems name the file, the field and the line; never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from farm.recipe_lint import lint_paths


def _farm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "farm.cli", *args], capture_output=True, text=True, check=False
    )


def _write(root: Path, rel: str, data: Any) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def _messages(root: Path) -> list[str]:
    _, problems = lint_paths([root])
    return [str(p) for p in problems]


def test_valid_recipe_passes(tmp_path: Path, recipe_data: dict[str, Any]) -> None:
    _write(tmp_path, "demo/1.0.0.yaml", recipe_data)
    recipes, problems = lint_paths([tmp_path])
    assert problems == [] and len(recipes) == 1


def test_unpinned_things_name_field_and_line(tmp_path: Path, recipe_data: dict[str, Any]) -> None:
    recipe_data["source"]["commit"] = "v1.0.0"
    recipe_data["image"] = "debian:bookworm"
    recipe_data["build"]["dependencies"] = [{"name": "flit-core", "version": "3.9.0"}]
    path = _write(tmp_path, "demo/1.0.0.yaml", recipe_data)
    msgs = _messages(tmp_path)
    text = path.read_text().splitlines()
    commit_line = next(i for i, line in enumerate(text, 1) if "commit:" in line)
    assert f"{path}:{commit_line}: source.git.commit: must be a full 40-hex commit" in msgs[
        0
    ] or any(f"{path}:{commit_line}: source.git.commit" in m for m in msgs)
    assert any("image: must pin the builder image by digest" in m for m in msgs)
    assert any("build.dependencies.0.sha256: no hash" in m for m in msgs)


def test_name_and_version_must_match_path(tmp_path: Path, recipe_data: dict[str, Any]) -> None:
    _write(tmp_path, "other/2.0.yaml", recipe_data)
    msgs = _messages(tmp_path)
    assert any("version: '1.0.0' does not match the file name '2.0.yaml'" in m for m in msgs)
    assert any("name: 'demo' does not match the directory 'other'" in m for m in msgs)


def test_duplicate_versions_refused(tmp_path: Path, recipe_data: dict[str, Any]) -> None:
    _write(tmp_path, "demo/1.0.0.yaml", recipe_data)
    _write(tmp_path, "Demo/1.0.0.yaml", recipe_data)
    assert any("already defined in" in m for m in _messages(tmp_path))


def test_duplicate_yaml_keys_refused(tmp_path: Path) -> None:
    _write(tmp_path, "demo/1.0.0.yaml", "name: demo\nname: other\n")
    assert any("duplicate key 'name'" in m and ":2:" in m for m in _messages(tmp_path))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "- a list\n",
        ": : [\n",
        "name: [unclosed\n",
        "\x00binary",
        "name: !!python/object:os.system x\n",
    ],
)
def test_malformed_recipes_get_lint_errors_not_tracebacks(tmp_path: Path, text: str) -> None:
    _write(tmp_path, "demo/1.0.0.yaml", text)
    result = _farm("recipe", "lint", str(tmp_path))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert "demo/1.0.0.yaml" in result.stdout
    assert "error: 1 problem(s) in 1 recipe file(s)" in result.stderr


def test_lint_cli_exit_codes(tmp_path: Path, recipe_data: dict[str, Any]) -> None:
    _write(tmp_path, "demo/1.0.0.yaml", recipe_data)
    ok = _farm("recipe", "lint", str(tmp_path))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    recipe_data["quorum"] = "three"
    _write(tmp_path, "demo/1.0.0.yaml", recipe_data)
    bad = _farm("recipe", "lint", str(tmp_path))
    assert bad.returncode == 1 and "quorum" in bad.stdout
    missing = _farm("recipe", "lint", str(tmp_path / "absent.yaml"))
    assert missing.returncode == 1 and "no such file" in missing.stdout


def test_shipped_recipes_lint_clean() -> None:
    root = Path(__file__).resolve().parents[3] / "recipes"
    recipes, problems = lint_paths([root])
    assert [str(p) for p in problems] == []
    assert len(recipes) >= 5


@pytest.mark.parametrize(
    ("images", "hint"),
    [
        ({"arm64": "debian:bookworm-arm64"}, "images.arm64: must pin this architecture's builder"),
        ({"arm64": "sha256:" + "ab" * 32}, "images.arm64: arm64 and amd64 both pin"),
        ({"riscv64": "sha256:" + "cd" * 32}, "images.riscv64: riscv64 is not one of"),
    ],
)
def test_a_bad_images_entry_names_its_architecture_and_line(
    tmp_path: Path, recipe_data: dict[str, Any], images: dict[str, str], hint: str
) -> None:
    recipe_data["architectures"] = ["amd64", "arm64"]
    recipe_data["images"] = images
    path = _write(tmp_path, "demo/1.0.0.yaml", recipe_data)
    (arch,) = images
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if f"{arch}: " in t)
    msgs = _messages(tmp_path)
    assert any(m.startswith(f"{path}:{line}: {hint}") for m in msgs), msgs


def test_an_output_for_an_unknown_architecture_names_its_line(
    tmp_path: Path, recipe_data: dict[str, Any]
) -> None:
    recipe_data["architectures"] = ["amd64", "arm64"]
    recipe_data["images"] = {"arm64": "sha256:" + "cd" * 32}
    recipe_data["outputs"] = [{"path": "a.whl"}, {"path": "b.whl", "arch": "riscv64"}]
    path = _write(tmp_path, "demo/1.0.0.yaml", recipe_data)
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if "riscv64" in t)
    msgs = _messages(tmp_path)
    assert any(
        m.startswith(f"{path}:{line}: outputs.1.arch: riscv64 is not one of") for m in msgs
    ), msgs

    recipe_data["outputs"] = [{"path": "a.whl", "arch": "amd64"}]
    path = _write(tmp_path, "demo/1.0.0.yaml", recipe_data)
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if t == "outputs:")
    msgs = _messages(tmp_path)
    assert any(m.startswith(f"{path}:{line}: outputs: none is declared for arm64") for m in msgs), (
        msgs
    )
