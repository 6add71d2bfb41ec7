"""Cross-architecture agreement: a pure wheel is the same bytes on every architecture.

A ``none-any`` wheel (pure Python, no compiled code, tagged for any platform) built for
amd64 and for arm64 from one recipe must come out byte-identical: nothing in it may
depend on the machine that made it. :func:`compare_arches` takes what each
architecture's builders agreed on (output name → sha256) and says, per pure output,
whether the architectures agree; it never raises. :func:`require_cross_arch` is the
check that does, naming the output, the architectures and their digests.

Outputs that are not pure (``linux_aarch64`` wheels, anything else) differ across
architectures by design and are not compared. Fewer than two architectures with a
result is ``not_applicable``, never a vacuous ``agreed``.

Invariant: the outcome does not depend on the order of the architectures.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from farm.errors import QuorumError

__all__ = [
    "CrossArch",
    "CrossArchOutput",
    "CrossArchVerdict",
    "compare_arches",
    "is_pure",
    "require_cross_arch",
]

CrossArchVerdict = Literal["agreed", "disputed", "not_applicable"]


def is_pure(output: str) -> bool:
    """Whether ``output`` is a wheel tagged for any platform (``…-none-any.whl``)."""
    return output.endswith(".whl") and output[: -len(".whl")].split("-")[-2:] == ["none", "any"]


@dataclass(frozen=True)
class CrossArchOutput:
    """One pure output and the sha256 each architecture's builders agreed on."""

    name: str
    digests: tuple[tuple[str, str], ...]
    """(architecture, sha256 hex), sorted by architecture."""

    @property
    def agreed(self) -> bool:
        """All architectures produced the same bytes."""
        return len({sha for _, sha in self.digests}) == 1

    def describe(self) -> str:
        """``name: amd64 sha256:…, arm64 sha256:…`` for messages."""
        sides = ", ".join(f"{arch} sha256:{sha[:16]}…" for arch, sha in self.digests)
        return f"{self.name}: {sides}"


@dataclass(frozen=True)
class CrossArch:
    """The comparison of one recipe's pure outputs across its architectures."""

    arches: tuple[str, ...]
    """The architectures that had a result to compare, sorted."""
    outputs: tuple[CrossArchOutput, ...]
    """The pure outputs at least two of them produced, sorted by name."""

    @property
    def disputes(self) -> tuple[CrossArchOutput, ...]:
        """The pure outputs whose bytes differ between architectures."""
        return tuple(o for o in self.outputs if not o.agreed)

    @property
    def verdict(self) -> CrossArchVerdict:
        """``disputed`` if a pure output differs; ``agreed`` if at least one was compared
        on two or more architectures and all match; else ``not_applicable``."""
        if self.disputes:
            return "disputed"
        return "agreed" if self.outputs else "not_applicable"

    def to_json(self) -> dict[str, object]:
        """The report's JSON form (``farm build --json``)."""
        return {
            "verdict": self.verdict,
            "arches": list(self.arches),
            "outputs": {
                o.name: {"agreed": o.agreed, "sha256": dict(o.digests)} for o in self.outputs
            },
        }


def compare_arches(results_by_arch: Mapping[str, Mapping[str, str] | None]) -> CrossArch:
    """Compare the agreed outputs (name → sha256 hex) of each architecture.

    An architecture whose builders agreed on nothing (``None``: failed or disputed on
    its own) takes no part. Never raises.
    """
    present = {a: dict(d) for a, d in results_by_arch.items() if d is not None}
    arches = tuple(sorted(present))
    names = sorted({n for d in present.values() for n in d if is_pure(n)})
    outputs = []
    for name in names:
        digests = tuple((a, present[a][name]) for a in arches if name in present[a])
        if len(digests) >= 2:
            outputs.append(CrossArchOutput(name, digests))
    return CrossArch(arches, tuple(outputs))


def require_cross_arch(c: CrossArch) -> None:
    """Return if no pure output differs across architectures; raise :class:`QuorumError`
    naming each that does, its architectures and their digests."""
    if c.disputes:
        raise QuorumError(
            "a pure wheel must be byte-identical on every architecture; "
            + "; ".join(f"{o.describe()}" for o in c.disputes)
        )
