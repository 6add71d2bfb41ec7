"""Help that reads as paragraphs at any terminal width.

Docstrings are hard-wrapped at the source's line length; Typer's Rich help keeps those
newlines, so at another width every source line ends early. :func:`reflow` joins the
lines of each prose paragraph; :class:`ReflowGroup`, the class of ``farm``'s root
command, applies it to every help text of the command tree (plugin commands included)
once the tree is built.

Invariants: paragraph breaks (blank lines) stay; so do ``\\b`` blocks (verbatim for
click), list items (``-``, ``*``, ``1.``) and indented lines, with their own line breaks;
reflowing twice changes nothing.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from typer.core import TyperGroup

__all__ = ["ReflowGroup", "reflow", "reflow_tree"]

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_LIST_ITEM = re.compile(r"([-*+\u2022]|\d+[.)])\s")


def _prose(line: str) -> bool:
    """A line that continues the sentence of the line before it when it follows prose."""
    return bool(line) and not line[0].isspace() and not _LIST_ITEM.match(line)


def _reflow_paragraph(paragraph: str) -> str:
    if paragraph.startswith("\b"):
        return paragraph
    lines: list[str] = []
    joinable = False  # the last kept line is prose: a prose line continues it
    for line in (x.rstrip() for x in paragraph.split("\n")):
        if joinable and _prose(line):
            lines[-1] = f"{lines[-1]} {line}"
            continue
        lines.append(line)
        joinable = _prose(line)
    return "\n".join(lines)


def reflow(text: str) -> str:
    """``text`` with each prose paragraph on one line; everything else kept as it is."""
    text = inspect.cleandoc(text)
    return "\n\n".join(_reflow_paragraph(p) for p in _PARAGRAPH_BREAK.split(text))


def reflow_tree(command: Any) -> None:
    """Reflow, in place, the help of ``command`` (a click command or group), its
    options and arguments, and the same of every subcommand below it."""
    for attr in ("help", "short_help", "epilog"):
        value = getattr(command, attr, None)
        if isinstance(value, str) and value:
            setattr(command, attr, reflow(value))
    for param in getattr(command, "params", ()):
        value = getattr(param, "help", None)
        if isinstance(value, str) and value:
            param.help = reflow(value)
    for sub in (getattr(command, "commands", None) or {}).values():
        reflow_tree(sub)


class ReflowGroup(TyperGroup):
    """A Typer group whose whole command tree gets reflowed help when it is built.

    Typer builds the subcommands before the group that holds them, so by the end of
    ``__init__`` every command registered on the app (entry-point plugins too) exists.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        reflow_tree(self)
