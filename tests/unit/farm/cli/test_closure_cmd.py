"""``farm recipe new -r``: where recipes go, what the exit status is, bad arguments."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from farm.cli._errors import run_cli
from farm.cli.closure_cmd import Row, existing_recipe, exit_code, new_recipe_path
from farm.cli.infer_cmd import new


def _recipes(tmp_path: Path) -> Path:
    out = tmp_path / "recipes"
    (out / "typing_extensions").mkdir(parents=True)
    (out / "typing_extensions" / "4.12.2.yaml").write_text("x")
    (out / "mdurl").mkdir()
    (out / "mdurl" / "0.1.2.yaml").write_text("x")
    (out / "mdurl" / "notes.yaml").write_text("x")
    return out


def test_an_existing_recipe_is_found_however_it_is_spelled(tmp_path: Path) -> None:
    out = _recipes(tmp_path)
    found = existing_recipe(out, "typing-extensions", "4.12.2.0")
    assert found == out / "typing_extensions" / "4.12.2.yaml"
    assert existing_recipe(out, "Typing.Extensions", "4.12.2") == found
    assert existing_recipe(out, "typing-extensions", "4.13.0") is None
    assert existing_recipe(out, "mdurl", "0.1.2") == out / "mdurl" / "0.1.2.yaml"
    assert existing_recipe(out, "rich", "13.9.4") is None
    assert existing_recipe(tmp_path / "absent", "rich", "13.9.4") is None


def test_a_new_version_goes_beside_the_others(tmp_path: Path) -> None:
    out = _recipes(tmp_path)
    assert new_recipe_path(out, "typing-extensions", "4.16.0") == (
        out / "typing_extensions" / "4.16.0.yaml"
    )
    assert new_recipe_path(out, "markdown-it-py", "3.0.0") == (
        out / "markdown-it-py" / "3.0.0.yaml"
    )


@pytest.mark.parametrize(
    ("results", "code"),
    [
        ([("matched", False), ("skipped", False)], 0),
        ([("matched", True), ("differs", True)], 0),  # written with --accept-differs
        ([("matched", True), ("differs", False)], 1),  # nothing written for one project
        ([("matched", True), ("failed", False)], 1),
        ([], 0),
    ],
)
def test_exit_status(results: list[tuple[str, bool]], code: int) -> None:
    rows = [Row("p", "1", "", result, "", 0.0, written) for result, written in results]
    assert exit_code(rows) == code


app = typer.Typer()
app.command()(new)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "give a release as NAME==VERSION, or a requirements file with -r FILE"),
        (["rich==13.9.4", "mdurl"], "argument 2: 'mdurl' is not pinned"),
        (["-r", "REQS"], "REQS:2: 'pygments>=2.13' is not pinned"),
        (["x==1", "--image", "latest"], "--image 'latest': give the builder image as sha256"),
    ],
)
def test_bad_arguments_are_named_before_anything_is_fetched(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("rich==13.9.4\npygments>=2.13\n")
    argv = [str(reqs) if a == "REQS" else a for a in argv]
    monkeypatch.setattr("sys.argv", ["farm", *argv])
    assert run_cli(app) == 1
    err = capsys.readouterr().err
    assert message.replace("REQS", str(reqs)) in err
    assert "Traceback" not in err
