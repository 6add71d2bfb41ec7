"""Find, check and hash the declared outputs of a build.

The output directory is what the build left in ``/out``, copied to the host. A build
is hostile until proven otherwise, so every declared output is checked before it is
hashed: only regular files inside the output directory are outputs; a symlink (even
one to a host file such as ``/etc/passwd``), a hard link to a file outside the
directory, a device, FIFO or socket, a path that escapes, and a file or a total over
the size limit are each refused with an :class:`OutputError` naming the file and the
reason. Nothing is ever followed: files are opened with ``O_NOFOLLOW`` and re-checked
after opening.

Declared outputs are paths or globs relative to the output directory: ``*`` and ``?``
match within one path component, ``**`` matches any number of components, ``[…]``
is a character class. A pattern without wildcards that names a directory collects
every file under it; a glob collects only the files it matches.
A pattern that matches nothing is an error.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from builders.errors import OutputError
from farm.recipe import Output

__all__ = ["CollectedOutput", "collect_outputs", "glob_to_regex"]

_CHUNK = 1 << 20
_GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class CollectedOutput:
    """One output file: its name relative to the output directory, and its content digest."""

    name: str
    path: Path
    sha256: str
    size: int


def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """Compile an output glob to a regex over ``/``-separated relative paths."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:[^/]+/)*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            j = pattern.find("]", i + 2 if pattern.startswith("[!", i) else i + 1)
            if j < 0:
                out.append(re.escape(c))
                i += 1
            else:
                body = pattern[i + 1 : j]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\").replace("/", "") + "]")
                i = j + 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out) + r"\Z")


def _walk(root: Path) -> dict[str, os.stat_result]:
    """Every entry under ``root`` (relative posix name → lstat), never following links."""
    entries: dict[str, os.stat_result] = {}

    def onerror(exc: OSError) -> None:
        raise OutputError(f"cannot read the output directory: {exc}")

    for dirpath, dirnames, filenames in os.walk(root, onerror=onerror, followlinks=False):
        rel_dir = Path(dirpath).relative_to(root)
        for name in (*dirnames, *filenames):
            rel = (rel_dir / name).as_posix()
            entries[rel] = os.lstat(Path(dirpath) / name)
    return entries


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symlink"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device file"
    return "not a regular file"


def _open_nofollow(root: Path, name: str) -> int:
    """Open ``root/name`` for reading, component by component, following no link."""
    fds: list[int] = []
    try:
        fds.append(os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
        parts = name.split("/")
        for part in parts[:-1]:
            flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
            fds.append(os.open(part, flags, dir_fd=fds[-1]))
        # O_NONBLOCK: a FIFO swapped in after the check must not hang us
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
        return os.open(parts[-1], flags, dir_fd=fds[-1])
    except OSError as exc:
        raise OutputError(
            f"output {name}: cannot open without following links: {exc.strerror}"
        ) from None
    finally:
        for fd in fds:
            os.close(fd)


def _hash(root: Path, name: str, st: os.stat_result, max_size: int) -> tuple[str, int]:
    ffd = _open_nofollow(root, name)
    with os.fdopen(ffd, "rb") as f:
        now = os.fstat(f.fileno())
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) or not stat.S_ISREG(now.st_mode):
            raise OutputError(f"output {name}: changed while being collected")
        h = hashlib.sha256()
        size = 0
        while chunk := f.read(_CHUNK):
            size += len(chunk)
            if size > max_size:
                raise OutputError(f"output {name}: larger than the limit of {max_size} bytes")
            h.update(chunk)
    return h.hexdigest(), size


def _select(entries: dict[str, os.stat_result], declared: Sequence[Output]) -> list[str]:
    chosen: set[str] = set()
    for out in declared:
        if out.path.startswith("/") or ".." in out.path.split("/"):
            raise OutputError(f"output {out.path}: escapes the output directory")
        regex = glob_to_regex(out.path.rstrip("/"))
        literal = not _GLOB_CHARS.search(out.path)
        picked: set[str] = set()
        for name in (n for n in entries if regex.match(n)):
            if not stat.S_ISDIR(entries[name].st_mode):
                picked.add(name)
            elif literal:  # a glob picks files; a directory is collected only when named
                prefix = name + "/"
                picked.update(
                    n
                    for n, st in entries.items()
                    if n.startswith(prefix) and not stat.S_ISDIR(st.st_mode)
                )
        if not picked:
            raise OutputError(
                f"declared output {out.path!r} matches no file in the output directory"
            )
        chosen |= picked
    return sorted(chosen)


def _refuse(root: Path, name: str, st: os.stat_result, links_inside: int, per_file: int) -> None:
    path = root / name
    if not stat.S_ISREG(st.st_mode):
        what = _kind(st.st_mode)
        if stat.S_ISLNK(st.st_mode):
            what += f" to {str(path.readlink())!r}"
        raise OutputError(f"output {name}: is {what}; only regular files are outputs")
    if not path.resolve().is_relative_to(root):
        raise OutputError(f"output {name}: escapes the output directory")
    if st.st_nlink > links_inside:
        raise OutputError(f"output {name}: is a hard link to a file outside the output directory")
    if st.st_size > per_file:
        raise OutputError(
            f"output {name}: {st.st_size} bytes is over the per-file limit of {per_file}"
        )


def collect_outputs(
    output_dir: Path,
    declared: Sequence[Output],
    *,
    max_total: int,
    max_file: int | None = None,
) -> tuple[CollectedOutput, ...]:
    """Check and hash the files that the declared outputs match, sorted by name.

    ``max_total`` bounds the sum of the outputs' sizes, ``max_file`` (default
    ``max_total``) each one. Raises :class:`OutputError` for the first refusal, naming
    the file and the reason, and for a declared output that matches nothing.
    """
    if not declared:
        raise OutputError("no outputs declared; a build must declare what it produces")
    per_file = max_total if max_file is None else max_file
    try:
        root = output_dir.resolve(strict=True)
    except OSError as exc:
        raise OutputError(f"output directory {output_dir}: {exc.strerror}") from None
    entries = _walk(root)
    names_per_inode = Counter((st.st_dev, st.st_ino) for st in entries.values())

    collected: list[CollectedOutput] = []
    total = 0
    for name in _select(entries, declared):
        st = entries[name]
        _refuse(root, name, st, names_per_inode[(st.st_dev, st.st_ino)], per_file)
        digest, size = _hash(root, name, st, per_file)
        total += size
        if total > max_total:
            raise OutputError(
                f"output {name}: brings the outputs to {total} bytes, over the limit of {max_total}"
            )
        collected.append(CollectedOutput(name=name, path=root / name, sha256=digest, size=size))
    return tuple(collected)
