"""SOURCE_DATE_EPOCH and TZ, read from the wheel's zip times against the sdist's mtimes.

Zip entries carry a *local* date-time with 2-second resolution and no zone. A backend
either stamps every entry with one time (SOURCE_DATE_EPOCH, or its own fixed default),
or stamps each file with its mtime in the build machine's local time. In the second
case every wheel member that is also an sdist member shows ``zip time - mtime`` equal
to the release manager's UTC offset at that mtime: one offset gives a fixed POSIX
``TZ``; two offsets an hour apart point at a zone with daylight saving time, tried
against a short table of common rules. Pure: values in, values out.
"""

from __future__ import annotations

import calendar
import contextlib
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

from farm.infer.artifacts import SdistFacts, WheelFacts

__all__ = ["Timing", "TzCandidate", "fixed_tz", "infer_timing", "match_member"]

#: Common zones with daylight saving time: POSIX rule (no tzdata needed) and IANA name.
DST_RULES: tuple[tuple[str, str], ...] = (
    ("GMT0BST,M3.5.0/1,M10.5.0", "Europe/London"),
    ("CET-1CEST,M3.5.0,M10.5.0/3", "Europe/Berlin"),
    ("EET-2EEST,M3.5.0/3,M10.5.0/4", "Europe/Helsinki"),
    ("EST5EDT,M3.2.0,M11.1.0", "America/New_York"),
    ("CST6CDT,M3.2.0,M11.1.0", "America/Chicago"),
    ("MST7MDT,M3.2.0,M11.1.0", "America/Denver"),
    ("PST8PDT,M3.2.0,M11.1.0", "America/Los_Angeles"),
    ("AEST-10AEDT,M10.1.0,M4.1.0/3", "Australia/Sydney"),
)


@dataclass(frozen=True)
class TzCandidate:
    """A ``TZ`` value to try, and why."""

    tz: str
    why: str


@dataclass(frozen=True)
class Timing:
    """What the times say."""

    common_epoch: int | None
    """The most common zip time read as UTC (a SOURCE_DATE_EPOCH candidate), if any."""
    common_share: float
    """The share of members stamped with that time."""
    matched: int
    """Wheel members found in the sdist (compared for offsets)."""
    offsets: dict[int, int]
    """``zip time - sdist mtime`` in seconds -> how many members show it."""
    tz_candidates: tuple[TzCandidate, ...]
    dist_info_fixed_2016: bool
    """Every generated ``.dist-info`` member stamped 2016-01-01 00:00:00 (flit_core, no SDE)."""


def fixed_tz(offset: int) -> str:
    """A POSIX ``TZ`` for a fixed UTC offset in seconds: ``UTC``, or e.g. ``<+0530>-5:30``."""
    if offset == 0:
        return "UTC"
    sign = "+" if offset > 0 else "-"
    hours, minutes = divmod(abs(offset) // 60, 60)
    posix_sign = "-" if offset > 0 else ""  # POSIX counts west of Greenwich as positive
    return f"<{sign}{hours:02d}{minutes:02d}>{posix_sign}{hours}:{minutes:02d}"


def match_member(wheel_name: str, sdist_names: set[str]) -> str | None:
    """The sdist member a wheel member was copied from: same path, or under a prefix
    such as ``src/``; the shortest such path wins. None for generated files."""
    if wheel_name in sdist_names:
        return wheel_name
    suffix = "/" + wheel_name
    found = [n for n in sdist_names if n.endswith(suffix)]
    return min(found, key=len) if found else None


def _epoch(dt: tuple[int, int, int, int, int, int]) -> int:
    return calendar.timegm((*dt, 0, 0, 0))


def _dst_candidates(pairs: list[tuple[int, int]]) -> list[TzCandidate]:
    """Rules that explain the most (mtime, offset) pairs, best first."""
    try:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
    except ImportError:  # pragma: no cover - stdlib since 3.9
        return []
    scored: list[tuple[int, TzCandidate]] = []
    for posix, iana in DST_RULES:
        with contextlib.suppress(ZoneInfoNotFoundError, ValueError):
            zone = ZoneInfo(iana)
            hits = 0
            for mtime, offset in pairs:
                local = datetime.fromtimestamp(mtime, UTC).astimezone(zone).utcoffset()
                if local is not None and int(local.total_seconds()) == offset:
                    hits += 1
            if hits:
                scored.append(
                    (
                        hits,
                        TzCandidate(
                            posix,
                            f"{hits} of {len(pairs)} files' zip times are their mtimes in "
                            f"{iana} local time (daylight saving time included)",
                        ),
                    )
                )
    scored.sort(key=lambda s: -s[0])
    return [c for _, c in scored[:2]]


def infer_timing(wheel: WheelFacts, sdist: SdistFacts) -> Timing:
    """Read SOURCE_DATE_EPOCH and TZ candidates from the two files' times."""
    times = Counter(m.date_time for m in wheel.members if not m.name.endswith("/"))
    common, count = times.most_common(1)[0] if times else (None, 0)
    total = sum(times.values())
    names = set(sdist.mtimes)
    pairs: list[tuple[int, int]] = []
    for member in wheel.members:
        source = match_member(member.name, names)
        if source is None:
            continue
        mtime = sdist.mtimes[source]
        pairs.append((mtime, _epoch(member.date_time) - (mtime - mtime % 2)))
    offsets = Counter(offset for _, offset in pairs)
    candidates: list[TzCandidate] = []
    plausible = {o: n for o, n in offsets.items() if abs(o) <= 14 * 3600 and o % 900 == 0}
    if plausible:
        ranked = sorted(plausible.items(), key=lambda kv: -kv[1])
        best, hits = ranked[0]
        candidates.append(
            TzCandidate(
                fixed_tz(best),
                f"{hits} of {len(pairs)} files' zip times are their sdist mtimes "
                f"{'unchanged (UTC)' if best == 0 else f'shifted by {best / 3600:+g} h'}",
            )
        )
        if len(ranked) > 1 and abs(ranked[0][0] - ranked[1][0]) == 3600:
            candidates = [*_dst_candidates(pairs), *candidates]
    if not any(c.tz == "UTC" for c in candidates):
        candidates.append(TzCandidate("UTC", "the default: no file time says otherwise"))
    dist_info = [
        m
        for m in wheel.members
        if m.name.split("/", 1)[0].endswith(".dist-info")
        and match_member(m.name, names) is None
        and not m.name.endswith("/")
    ]
    fixed_2016 = bool(dist_info) and all(m.date_time == (2016, 1, 1, 0, 0, 0) for m in dist_info)
    return Timing(
        common_epoch=_epoch(common) if common is not None else None,
        common_share=count / total if total else 0.0,
        matched=len(pairs),
        offsets=dict(offsets),
        tz_candidates=tuple(candidates),
        dist_info_fixed_2016=fixed_2016,
    )
