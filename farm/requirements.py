"""Pinned requirement files: what ``farm recipe new -r`` and ``farm coverage -r`` read.

Pure: text in, :class:`Pinned` values out. A line is one requirement pinned to exactly
one release, ``name[extras]==version`` with an optional environment marker, as pip
writes them (``pip freeze``, ``pip-compile``). farm builds and verifies releases, not
ranges, so anything else is refused with a :class:`~farm.errors.ConfigError` naming the
file, the line and what to write instead; nothing is silently dropped.

Accepted besides requirements: blank lines, ``#`` comments (whole-line, or after white
space), backslash continuations, and ``--hash=sha256:…`` options (pip-compile's; they
pin files of the release, which farm pins by itself, so they are read and not used).
Refused: other options (``-r``, ``-c``, ``-e``, ``--index-url``, …), direct URLs and
paths, ranges, wildcards (``==1.*``) and ``===``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from farm.errors import ConfigError

__all__ = ["Pinned", "parse_pinned", "pinned_from_args", "read_pinned"]

_HASH = re.compile(r"\s--hash[=\s]\s*\S+")
_COMMENT = re.compile(r"(^|\s)#.*$")


@dataclass(frozen=True)
class Pinned:
    """One requirement pinned to exactly one release."""

    name: str
    """The project name as written (compare with :attr:`key`)."""
    version: str
    extras: frozenset[str]
    marker: Marker | None
    where: str
    """``FILE:LINE`` (or ``argument N``), for messages."""
    text: str
    """The requirement as written, without comments and options."""

    @property
    def key(self) -> str:
        """The PEP 503 normalized project name."""
        return canonicalize_name(self.name)

    @property
    def spec(self) -> str:
        """``name==version``."""
        return f"{self.name}=={self.version}"

    def requirement(self) -> Requirement:
        """The same requirement as a :class:`packaging.requirements.Requirement`."""
        return Requirement(self.text)


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(first line number, text) of each logical line: comments cut, continuations joined."""
    buffer: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = _COMMENT.sub("", raw).rstrip()
        if not buffer:
            start = number
        if line.endswith("\\"):
            buffer.append(line[:-1])
            continue
        buffer.append(line)
        joined = " ".join(part.strip() for part in buffer).strip()
        buffer = []
        if joined:
            yield start, joined
    if buffer:
        joined = " ".join(part.strip() for part in buffer).strip()
        if joined:
            yield start, joined


def _parse_one(line: str, where: str) -> Pinned:
    """One requirement line (options other than --hash refused); ConfigError naming it."""
    body = _HASH.sub("", f" {line}").strip()
    if body.startswith("-"):
        raise ConfigError(
            f"{where}: {line!r}: only pinned requirements (name==version) are read here, "
            f"not pip options like {body.split()[0]!r}"
        )
    try:
        req = Requirement(body)
    except InvalidRequirement as exc:
        raise ConfigError(f"{where}: {body!r} is not a requirement: {exc}") from None
    if req.url:
        raise ConfigError(
            f"{where}: {body!r} names a direct URL; pin a release on the index: name==version"
        )
    specs = list(req.specifier)
    version = specs[0].version if len(specs) == 1 else ""
    if len(specs) != 1 or specs[0].operator != "==" or version.endswith(".*"):
        raise ConfigError(
            f"{where}: {body!r} is not pinned: give exactly one release, "
            f"{req.name}==VERSION (farm builds and verifies releases, not ranges)"
        )
    try:
        Version(version)
    except InvalidVersion:
        raise ConfigError(f"{where}: {version!r} is not a PEP 440 version") from None
    return Pinned(req.name, version, frozenset(req.extras), req.marker, where, body)


def _no_duplicates(pins: Sequence[Pinned]) -> list[Pinned]:
    """``pins`` with repeats of one release dropped; ConfigError for two releases of one
    project (under the same marker: ``x==1; python_version<'3.9'`` beside ``x==2;
    python_version>='3.9'`` is fine)."""
    seen: dict[tuple[str, str], Pinned] = {}
    kept: list[Pinned] = []
    for pin in pins:
        marker = str(pin.marker or "")
        other = seen.get((pin.key, marker))
        if other is None:
            seen[(pin.key, marker)] = pin
            kept.append(pin)
        elif Version(other.version) != Version(pin.version):
            raise ConfigError(
                f"{pin.where}: {pin.spec} contradicts {other.spec} ({other.where}); "
                "pin one release of each project"
            )
    return kept


def parse_pinned(text: str, source: str) -> list[Pinned]:
    """Every requirement of a requirements file's ``text`` (``source`` names it).

    Raises:
        ConfigError: the first line that is not a pinned requirement, or two lines
            pinning different releases of one project (for the same environment).
    """
    return _no_duplicates([_parse_one(line, f"{source}:{n}") for n, line in _logical_lines(text)])


def read_pinned(path: Path) -> list[Pinned]:
    """The pinned requirements of the file at ``path``; ConfigError if unreadable, empty
    or not pinned."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the requirements file: {exc}") from None
    found = parse_pinned(text, str(path))
    if not found:
        raise ConfigError(f"{path}: no requirements in it (one name==version a line)")
    return found


def pinned_from_args(files: Iterable[Path], specs: Iterable[str]) -> list[Pinned]:
    """Requirements of ``-r`` files, then of ``NAME==VERSION`` arguments, in that order."""
    found: list[Pinned] = []
    for path in files:
        found.extend(read_pinned(path))
    for i, spec in enumerate(specs, 1):
        found.append(_parse_one(spec, f"argument {i}"))
    return _no_duplicates(found)
