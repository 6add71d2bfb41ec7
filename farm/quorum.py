"""The quorum rule: do enough independent builders agree on the bytes?

``tally`` never raises: it groups results by the exact set of (output name, sha256)
and counts distinct builder ids, saying who agreed, who dissented, who failed and
who is missing. ``require_quorum`` is the check that raises, with a message a person
can act on.

Verdicts:
  * ``verified`` — at least ``quorum`` distinct builders produced the identical digest
    set and no builder produced a different one;
  * ``disputed`` — two successful results differ (also when one builder signed two
    different digest sets);
  * ``failed``   — no disagreement, but fewer than ``quorum`` builders finished.

Fail closed: no results or a quorum below one never verifies. Invariant: the verdict
does not depend on the order of the results.

Independence: distinct keys are not enough. Each enrolled builder belongs to an
independence domain (the organisation or site that controls it, assigned by the
operator in the signed enroll transaction); ``require_domains`` raises
:class:`~farm.errors.DomainShortfallError` unless the agreeing builders span at least
``quorum`` distinct domains. Validators and the consumer both apply it (ADR 35).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from farm.errors import DomainShortfallError, QuorumError
from farm.result import SignedResult

__all__ = [
    "DigestGroup",
    "Tally",
    "Verdict",
    "distinct_domains",
    "require_domains",
    "require_quorum",
    "tally",
]

Verdict = Literal["verified", "disputed", "failed"]
DigestSet = frozenset[tuple[str, str]]


@dataclass(frozen=True)
class DigestGroup:
    """Builders that produced one identical digest set."""

    digests: DigestSet
    builders: tuple[str, ...]

    def describe(self) -> str:
        """Short form for messages: one digest, or a count of outputs."""
        if len(self.digests) == 1:
            ((name, sha),) = tuple(self.digests)
            return f"{name} sha256:{sha[:16]}…"
        return f"{len(self.digests)} outputs"


@dataclass(frozen=True)
class Tally:
    """The grouped outcome of one build across builders."""

    quorum: int
    groups: tuple[DigestGroup, ...]
    failed: tuple[str, ...]
    missing: tuple[str, ...]

    @property
    def majority(self) -> DigestGroup | None:
        """The largest group (ties broken by digest order, so it is order-independent)."""
        if not self.groups:
            return None
        return self.groups[0]

    @property
    def verdict(self) -> Verdict:
        """``verified``, ``disputed`` or ``failed`` as the module docstring defines them."""
        if len(self.groups) > 1:
            return "disputed"
        top = self.majority
        if self.quorum < 1 or top is None or len(top.builders) < self.quorum:
            return "failed"
        return "verified"

    @property
    def dissenters(self) -> tuple[str, ...]:
        """Builders outside the majority group."""
        return tuple(b for g in self.groups[1:] for b in g.builders)


def tally(results: Iterable[SignedResult], quorum: int, expected: Sequence[str] = ()) -> Tally:
    """Group verified results by digest set; never raises."""
    sets: dict[str, set[DigestSet]] = {}
    failed: set[str] = set()
    for result in results:
        builder = result.predicate.builder_id
        if result.predicate.status != "succeeded":
            failed.add(builder)
            continue
        sets.setdefault(builder, set()).add(frozenset(result.digest_set().items()))
    by_digest: dict[DigestSet, set[str]] = {}
    for builder, digest_sets in sets.items():
        for ds in digest_sets:
            by_digest.setdefault(ds, set()).add(builder)
    groups = sorted(
        (DigestGroup(ds, tuple(sorted(bs))) for ds, bs in by_digest.items()),
        key=lambda g: (-len(g.builders), sorted(g.digests)),
    )
    seen = set(sets) | failed
    return Tally(
        quorum=quorum,
        groups=tuple(groups),
        failed=tuple(sorted(failed - set(sets))),
        missing=tuple(sorted(set(expected) - seen)),
    )


def require_quorum(t: Tally) -> DigestGroup:
    """The agreed group of a verified tally; otherwise raise :class:`QuorumError` saying why."""
    top = t.majority
    if t.verdict == "verified" and top is not None:
        return top
    if top is None:
        detail = "no builder produced a result"
    else:
        detail = f"{len(top.builders)}/{t.quorum} builders agree on {top.describe()}"
    parts = [detail]
    for group in t.groups[1:]:
        who = ", ".join(b[:12] for b in group.builders)
        parts.append(f"builder {who} produced {group.describe()}")
    if t.failed:
        parts.append("failed: " + ", ".join(b[:12] for b in t.failed))
    if t.missing:
        parts.append("no result from: " + ", ".join(b[:12] for b in t.missing))
    raise QuorumError(f"{t.verdict}: " + "; ".join(parts))


def distinct_domains(
    builder_ids: Iterable[str], domain_of: Callable[[str], str | None]
) -> dict[str, tuple[str, ...]]:
    """domain → the builders of ``builder_ids`` in it. A builder whose domain is unknown
    (``domain_of`` answers None) is counted in a domain of its own, its key id: that
    never merges two builders, and ``require_domains`` fails closed on the count."""
    groups: dict[str, list[str]] = {}
    for b in sorted(set(builder_ids)):
        groups.setdefault(domain_of(b) or f"builder:{b}", []).append(b)
    return {d: tuple(bs) for d, bs in sorted(groups.items())}


def require_domains(
    builder_ids: Iterable[str], domain_of: Callable[[str], str | None], quorum: int
) -> dict[str, tuple[str, ...]]:
    """The agreeing builders grouped by independence domain, if there are at least
    ``quorum`` domains (and ``quorum`` >= 1); otherwise raise
    :class:`~farm.errors.DomainShortfallError` naming the domains found."""
    groups = distinct_domains(builder_ids, domain_of)
    if quorum < 1 or len(groups) < quorum:
        named = "; ".join(f"{d}: {', '.join(b[:12] for b in bs)}" for d, bs in groups.items())
        raise DomainShortfallError(
            f"farm.quorum.domain_shortfall: the agreeing builders span {len(groups)} "
            f"independence domain(s), {quorum} needed ({named or 'none'})"
        )
    return groups
