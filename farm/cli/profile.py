"""The profile: defaults for every ``farm`` command, left by ``farm up --keep-running``.

A profile is a file of ``FARM_NAME=value`` lines (``#`` comments, blank lines and a
leading ``export`` allowed; values may be shell-quoted), so a shell can also ``source``
it. ``farm`` reads ``$FARM_PROFILE``, or else ``~/.farm/local/env``, once at start, and
sets each name in its environment unless the environment already has it: an explicit
flag wins over the environment, which wins over the profile. A missing profile is no
profile; a malformed one stops every command with an error naming the file and line.

Only standard-library imports: ``farm pull`` and ``farm verify`` start through here too.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import MutableMapping
from pathlib import Path

__all__ = [
    "DEFAULT_PROFILE",
    "ProfileError",
    "apply_profile",
    "load_profile",
    "parse_profile",
    "profile_path",
    "write_profile",
]

#: Where ``farm up`` leaves its profile by default (its default ``--root`` plus ``env``).
DEFAULT_PROFILE = Path("~/.farm/local/env")
_LINE = re.compile(r"^(?:export\s+)?(FARM_[A-Z0-9_]+)=(.*)$")


class ProfileError(ValueError):
    """A profile that cannot be read; the message names the file and line."""


def profile_path(environ: MutableMapping[str, str] | None = None) -> Path:
    """``$FARM_PROFILE`` if set, else ``~/.farm/local/env``."""
    env = os.environ if environ is None else environ
    if env.get("FARM_PROFILE"):
        return Path(env["FARM_PROFILE"]).expanduser()
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    return home / DEFAULT_PROFILE.relative_to("~")


def parse_profile(text: str, source: str) -> dict[str, str]:
    """The settings in ``text``; ProfileError naming ``source`` and the line otherwise."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise ProfileError(f"{source}:{number}: expected FARM_NAME=VALUE, found {line[:60]!r}")
        name, value = match.groups()
        try:
            words = shlex.split(value)
        except ValueError as exc:
            raise ProfileError(f"{source}:{number}: {name}: {exc}") from None
        if len(words) > 1:
            raise ProfileError(f"{source}:{number}: {name}: quote a value with spaces")
        values[name] = words[0] if words else ""
    return values


def load_profile(path: Path) -> dict[str, str]:
    """The settings in the profile at ``path``; empty if there is none."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{path}: cannot read the profile: {exc}") from None
    return parse_profile(text, str(path))


def apply_profile(environ: MutableMapping[str, str] | None = None) -> None:
    """Set the profile's settings in the environment where it has none.

    A malformed profile prints ``error: FILE:LINE: ...`` to stderr and exits 1: no
    command should run with half its defaults.
    """
    env = os.environ if environ is None else environ
    path = profile_path(env)
    try:
        values = load_profile(path)
    except ProfileError as exc:
        print(f"error: {exc} (fix the profile or remove it)", file=sys.stderr)
        raise SystemExit(1) from None
    for name, value in values.items():
        env.setdefault(name, value)


def write_profile(path: Path, values: dict[str, str], comment: str) -> None:
    """Write ``values`` as a profile readable only by its owner (0600), atomically."""
    lines = [f"# {line}" for line in comment.splitlines()]
    lines += [f"{name}={shlex.quote(value)}" for name, value in values.items()]
    for name in values:
        if _LINE.match(f"{name}=") is None:
            raise ProfileError(f"{name} is not a FARM_ setting name")
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write("\n".join(lines) + "\n")
    tmp.replace(path)
