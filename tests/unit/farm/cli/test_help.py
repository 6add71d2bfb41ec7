"""``farm ... --help`` reads as paragraphs at any width (``farm.cli._help``).

Every command of the tree (plugin commands included) is rendered at 60, 80 and 200
columns. A docstring's source line break must never show as a rendered line break: where
a rendered line ends at a source line's end and the next rendered line starts with the
next source line, the first word of that next line must not have fitted on the first.
"""

from __future__ import annotations

import inspect
import itertools
import re
from collections.abc import Iterator

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner
from typer.utils import get_params_from_function

from farm.cli._help import reflow
from farm.cli.main import app

WIDTHS = (60, 80, 200)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_LIST_ITEM = re.compile(r"([-*+\u2022]|\d+[.)])\s")


def _tree(command: object, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], object]]:
    yield path, command
    for name, sub in sorted((getattr(command, "commands", None) or {}).items()):
        yield from _tree(sub, (*path, name))


COMMANDS = list(_tree(get_command(app)))


def _sources(command: object) -> list[str]:
    """The help texts of ``command`` as written in the source (not as reflowed)."""
    callback = getattr(command, "callback", None)
    original = getattr(callback, "__wrapped__", callback)
    if original is None:
        return []
    texts = [inspect.getdoc(original) or ""]
    for meta in get_params_from_function(original).values():
        help_text = getattr(meta.default, "help", None)
        if isinstance(help_text, str):
            texts.append(inspect.cleandoc(help_text))
    return texts


def _group_helps(t: typer.Typer) -> Iterator[str]:
    if isinstance(t.info.help, str):
        yield inspect.cleandoc(t.info.help)
    for group in t.registered_groups:
        if isinstance(group.help, str):
            yield inspect.cleandoc(group.help)
        if group.typer_instance is not None:
            yield from _group_helps(group.typer_instance)


def _joints(text: str) -> Iterator[tuple[list[str], str]]:
    """(end of a source line, start of the next) wherever the next line continues the
    same prose paragraph."""
    for paragraph in re.split(r"\n[ \t]*\n", text):
        if paragraph.startswith("\b"):
            continue
        lines = paragraph.split("\n")
        for before, after in itertools.pairwise(lines):
            prose = [x for x in (before, after) if x and not x[0].isspace()]
            if len(prose) == 2 and not any(_LIST_ITEM.match(x) for x in prose):
                yield before.split()[-3:], " ".join(after.split()[:3])


def _render(path: tuple[str, ...], width: int) -> list[str]:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": str(width)})
    assert result.exit_code == 0, (path, result.output)
    lines = _ANSI.sub("", result.output).splitlines()
    assert max(len(line) for line in lines) == width, "COLUMNS was not honoured"
    return lines


def _forced_breaks(lines: list[str], joints: list[tuple[list[str], str]], width: int) -> list[str]:
    """Rendered line breaks that sit on a source joint although the next word fitted."""
    found = []
    for first, second in itertools.pairwise(lines):
        for tail, head in joints:
            start = second.find(head)
            if start < 0 or second[:start].strip(" │"):
                continue
            cell = first[start:].rstrip(" │").split()
            if not cell or cell[-len(tail) :] != tail[-len(cell) :]:
                continue
            # The cell runs from the continuation's column to the panel border (or the
            # help's one-column right padding); Rich breaks only when the word won't fit.
            end = first.rindex("│") - 1 if first.rstrip().endswith("│") else width - 1
            room = end - start
            used = len(" ".join(cell))
            if used + 1 + len(head.split()[0]) < room:
                found.append(f"{first.strip()!r} / {second.strip()!r}")
    return found


def test_the_tree_has_multi_line_docstrings_to_check() -> None:
    """Not vacuous: the tree holds hard-wrapped docstrings, plugin commands included."""
    paths = {p for p, c in COMMANDS if any(list(_joints(t)) for t in _sources(c))}
    assert {("up",), ("serve",), ("dist", "serve"), ("pull",), ("bench", "dist")} <= paths


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize(
    ("path", "command"), [pytest.param(p, c, id=" ".join(("farm", *p))) for p, c in COMMANDS]
)
def test_help_is_not_broken_at_source_newlines(
    path: tuple[str, ...], command: object, width: int
) -> None:
    sources = _sources(command)
    listed = [
        t for sub in (getattr(command, "commands", None) or {}).values() for t in _sources(sub)
    ]
    if not path:
        listed += list(_group_helps(app))
    joints = [j for text in sources + listed for j in _joints(text)]
    lines = _render(path, width)
    assert _forced_breaks(lines, joints, width) == []
    # And every paragraph of the command's docstring is there, words in order.
    rendered = "".join("".join(line.strip(" │").split()) for line in lines)
    for paragraph in re.split(r"\n[ \t]*\n", sources[0] if sources else ""):
        assert "".join(paragraph.split()) in rendered, paragraph


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("One line.", "One line."),
        (
            "A sentence\nthat goes on.\n\nA second\nparagraph.",
            "A sentence that goes on.\n\nA second paragraph.",
        ),
        ("Steps:\n- one\n- two\n  continued\n\nEnd.", "Steps:\n- one\n- two\n  continued\n\nEnd."),
        ("Intro\nline.\n1. first\n2. second", "Intro line.\n1. first\n2. second"),
        ("\b\nverbatim\nlines\n\nprose\nhere", "\b\nverbatim\nlines\n\nprose here"),
        (
            "Text:\n\n      indented\n      block\n\n    End.",
            "Text:\n\n  indented\n  block\n\nEnd.",
        ),
        ("    Indented\n    docstring\n    lines.", "Indented docstring lines."),
    ],
)
def test_reflow(text: str, expected: str) -> None:
    assert reflow(text) == expected
    assert reflow(expected) == expected
