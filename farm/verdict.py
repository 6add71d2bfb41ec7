"""The verdict of one build: what the verified builder results add up to.

Pure: takes the verified results of one build and its recipe, returns a
:class:`Verdict` value. The core is :func:`farm.quorum.tally`; this adds who agreed,
dissented, failed or is missing, the agreed digest set, which outputs differ between
builders (what diffoscope is asked to explain), and, per output, whether the agreed
digest matches the recipe's upstream reference digest.

Invariants: the verdict does not depend on the order of the results; building it
never raises (``require_verified`` is the check that does); fail closed — no results,
or fewer than ``quorum`` agreeing builders, is never ``verified``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from farm.errors import QuorumError
from farm.quorum import Verdict as Status
from farm.quorum import require_quorum, tally
from farm.recipe import Recipe
from farm.result import SignedResult

__all__ = ["OutputVerdict", "Status", "UpstreamState", "Verdict", "decide", "require_verified"]

UpstreamState = Literal["match", "differ", "no reference"]


@dataclass(frozen=True)
class OutputVerdict:
    """One output: the agreed digest, every digest builders produced, and upstream."""

    name: str
    sha256: str | None
    """The agreed (majority) digest, or None when the majority did not produce it."""
    produced: tuple[str, ...]
    """Every distinct digest any successful builder produced for this output, sorted."""
    upstream_sha256: str | None
    upstream: UpstreamState

    @property
    def disputed(self) -> bool:
        """Builders produced more than one digest, or only dissenters produced it."""
        if len(self.produced) > 1:
            return True
        return bool(self.produced) and self.sha256 != self.produced[0]


@dataclass(frozen=True)
class Verdict:
    """The outcome of one build across its builders."""

    status: Status
    quorum: int
    agreed: tuple[str, ...]
    dissented: tuple[str, ...]
    failed: tuple[str, ...]
    missing: tuple[str, ...]
    digests: tuple[tuple[str, str], ...]
    """The agreed digest set (output name, sha256), sorted by name; empty if none."""
    outputs: tuple[OutputVerdict, ...]
    reason: str
    """One line for people: why the status is what it is."""

    @property
    def upstream_matches(self) -> bool | None:
        """True if every referenced output matches upstream, None if there is no reference."""
        refs = [o for o in self.outputs if o.upstream != "no reference"]
        if not refs:
            return None
        return all(o.upstream == "match" for o in refs)

    def differing_outputs(self) -> tuple[OutputVerdict, ...]:
        """Outputs whose digests differ between builders (what diffoscope should compare)."""
        return tuple(o for o in self.outputs if o.disputed)

    def to_json(self) -> dict[str, Any]:
        """A JSON value of the verdict (what the coordinator stores and serves)."""
        return {
            "status": self.status,
            "quorum": self.quorum,
            "agreed": list(self.agreed),
            "dissented": list(self.dissented),
            "failed": list(self.failed),
            "missing": list(self.missing),
            "digests": [{"name": n, "sha256": s} for n, s in self.digests],
            "outputs": [
                {
                    "name": o.name,
                    "sha256": o.sha256,
                    "produced": list(o.produced),
                    "upstream_sha256": o.upstream_sha256,
                    "upstream": o.upstream,
                }
                for o in self.outputs
            ],
            "upstream_matches": self.upstream_matches,
            "reason": self.reason,
        }


def _reason(results: Sequence[SignedResult], quorum: int, expected: Sequence[str]) -> str:
    try:
        group = require_quorum(tally(results, quorum, expected))
    except QuorumError as exc:
        return str(exc)
    return f"verified: {len(group.builders)}/{quorum} builders agree on {group.describe()}"


def decide(
    recipe: Recipe,
    results: Iterable[SignedResult],
    expected: Sequence[str] = (),
    arch: str | None = None,
) -> Verdict:
    """The verdict of ``results`` (already verified, all of one build) under ``recipe``.

    ``expected`` names the builders that were asked; those without a result are
    ``missing``. ``arch`` is the build's architecture: only the upstream references of
    its outputs are compared (``None``: all of them). Never raises.
    """
    ordered = sorted(results, key=lambda r: (r.predicate.builder_id, r.envelope["payload"]))
    t = tally(ordered, recipe.quorum, expected)
    top = t.majority
    agreed_map = dict(top.digests) if top is not None else {}
    produced: dict[str, set[str]] = {}
    for result in ordered:
        if result.predicate.status == "succeeded":
            for name, sha in result.digest_set().items():
                produced.setdefault(name, set()).add(sha)
    refs = recipe.upstream if arch is None else recipe.upstream_for(arch)
    upstream = {u.output: u.sha256 for u in refs}
    outputs = []
    for name in sorted(set(produced) | set(upstream)):
        agreed = agreed_map.get(name)
        ref = upstream.get(name)
        state: UpstreamState = "no reference"
        if ref is not None:
            state = "match" if agreed == ref else "differ"
        outputs.append(
            OutputVerdict(name, agreed, tuple(sorted(produced.get(name, ()))), ref, state)
        )
    # An output only upstream has is not a dispute between builders.
    outputs = [o if o.name in produced else _upstream_only(o) for o in outputs]
    return Verdict(
        status=t.verdict,
        quorum=t.quorum,
        agreed=top.builders if top is not None else (),
        dissented=t.dissenters,
        failed=t.failed,
        missing=t.missing,
        digests=tuple(sorted(agreed_map.items())),
        outputs=tuple(outputs),
        reason=_reason(ordered, recipe.quorum, expected),
    )


def _upstream_only(o: OutputVerdict) -> OutputVerdict:
    return OutputVerdict(o.name, None, (), o.upstream_sha256, "differ")


def require_verified(verdict: Verdict) -> tuple[tuple[str, str], ...]:
    """The agreed digest set of a verified verdict; otherwise raise :class:`QuorumError`."""
    if verdict.status != "verified" or not verdict.agreed:
        raise QuorumError(verdict.reason)
    return verdict.digests
