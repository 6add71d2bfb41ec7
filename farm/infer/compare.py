"""How close a rebuilt wheel came to upstream's: which members differ, and in what.

Pure over two zip files: member names, contents (CRC and size), local times, modes and
archive order. The cause tag it gives a near miss feeds the coverage benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from farm.infer.artifacts import WheelFacts, read_wheel

__all__ = ["WheelDiff", "diff_wheels"]


@dataclass(frozen=True)
class WheelDiff:
    """The differences between upstream's wheel and a rebuild (empty when equal)."""

    total: int
    only_upstream: tuple[str, ...]
    only_rebuilt: tuple[str, ...]
    content: tuple[str, ...]
    times: tuple[str, ...]
    modes: tuple[str, ...]
    order_differs: bool
    filename_differs: bool

    @property
    def differing(self) -> tuple[str, ...]:
        """Every member that differs in any way, sorted."""
        return tuple(
            sorted(
                {*self.only_upstream, *self.only_rebuilt, *self.content, *self.times, *self.modes}
            )
        )

    @property
    def score(self) -> int:
        """Smaller is closer: differing members, plus one for order or file name."""
        return len(self.differing) + int(self.order_differs) + int(self.filename_differs)

    @property
    def cause(self) -> str:
        """A short tag for what kind of difference dominates."""
        non_record = [m for m in self.content if not m.endswith(("/RECORD", "/WHEEL"))]
        only_meta = all(".dist-info/" in m for m in non_record)
        ranked = (
            (self.filename_differs, "filename"),
            (bool(self.only_upstream or self.only_rebuilt), "members"),
            (bool(non_record) and only_meta, "metadata"),
            (bool(non_record), "content"),
            (bool(self.times), "times"),
            (bool(self.modes), "modes"),
            (self.order_differs, "order"),
        )
        return "differs:" + next((tag for hit, tag in ranked if hit), "record")

    def summary(self, limit: int = 6) -> str:
        """One line for people."""
        parts: list[str] = []
        for label, names in (
            ("missing", self.only_upstream),
            ("extra", self.only_rebuilt),
            ("content", self.content),
            ("time", self.times),
            ("mode", self.modes),
        ):
            if names:
                shown = ", ".join(names[:limit]) + (" …" if len(names) > limit else "")
                parts.append(f"{label}: {shown}")
        if self.order_differs:
            parts.append("member order differs")
        if self.filename_differs:
            parts.append("wheel file name differs")
        head = f"{len(self.differing)} of {self.total} members differ"
        return head + ("; " + "; ".join(parts) if parts else "")


def diff_facts(upstream: WheelFacts, rebuilt: WheelFacts) -> WheelDiff:
    """Compare two wheels already read."""
    up = {m.name: m for m in upstream.members}
    re_ = {m.name: m for m in rebuilt.members}
    common = [n for n in up if n in re_]
    return WheelDiff(
        total=len(up),
        only_upstream=tuple(sorted(set(up) - set(re_))),
        only_rebuilt=tuple(sorted(set(re_) - set(up))),
        content=tuple(n for n in common if (up[n].crc, up[n].size) != (re_[n].crc, re_[n].size)),
        times=tuple(n for n in common if up[n].date_time != re_[n].date_time),
        modes=tuple(n for n in common if up[n].mode != re_[n].mode),
        order_differs=[n for n in up if n in re_] != [n for n in re_ if n in up],
        filename_differs=upstream.filename != rebuilt.filename,
    )


def diff_wheels(upstream: Path, rebuilt: Path, upstream_name: str | None = None) -> WheelDiff:
    """Compare upstream's wheel file with a rebuilt one."""
    return diff_facts(read_wheel(upstream, upstream_name), read_wheel(rebuilt))
