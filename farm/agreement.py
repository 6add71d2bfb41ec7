"""The agreement table of one build: outputs × builders, and the upstream match.

Pure: takes the tally and verified results, returns rows that the command line
renders. A cell says whether that builder's digest of that output is the majority's.
Whether an output matches upstream is the verdict's comparison
(:func:`farm.verdict.decide`), shown here under the table's shorter labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from farm.quorum import Tally
from farm.recipe import Recipe
from farm.result import SignedResult
from farm.verdict import UpstreamState as VerdictUpstream
from farm.verdict import decide

__all__ = ["AgreementRow", "Cell", "agreement_rows"]

CellState = Literal["agree", "differ", "missing", "failed"]
UpstreamState = Literal["match", "differ", "none"]

_LABEL: dict[VerdictUpstream, UpstreamState] = {
    "match": "match",
    "differ": "differ",
    "no reference": "none",
}


@dataclass(frozen=True)
class Cell:
    """One builder's digest of one output."""

    builder_id: str
    sha256: str | None
    state: CellState


@dataclass(frozen=True)
class AgreementRow:
    """One output across builders."""

    output: str
    cells: tuple[Cell, ...]
    majority: str | None
    upstream: str | None
    upstream_state: UpstreamState

    @property
    def agreed(self) -> bool:
        """Every builder produced the majority digest."""
        return all(c.state == "agree" for c in self.cells)


def agreement_rows(
    recipe: Recipe,
    results: Sequence[SignedResult],
    builders: Sequence[str],
    t: Tally,
    arch: str | None = None,
) -> list[AgreementRow]:
    """Rows for every output any builder produced, in name order (upstream compared as
    :func:`farm.verdict.decide` compares it for ``arch``)."""
    by_builder = {r.predicate.builder_id: r for r in results}
    majority = dict(t.majority.digests) if t.majority else {}
    names = sorted({name for r in results for name in r.digest_set()} | set(majority))
    upstream = {o.name: o for o in decide(recipe, results, builders, arch).outputs}
    rows = []
    for name in names:
        cells = []
        for builder in builders:
            result = by_builder.get(builder)
            if result is None:
                cells.append(Cell(builder, None, "missing"))
            elif result.predicate.status != "succeeded":
                cells.append(Cell(builder, None, "failed"))
            else:
                sha = result.digest_set().get(name)
                ok = sha is not None and sha == majority.get(name)
                cells.append(Cell(builder, sha, "agree" if ok else "differ"))
        verdict = upstream.get(name)
        ref = verdict.upstream_sha256 if verdict is not None else None
        state = _LABEL[verdict.upstream] if verdict is not None else "none"
        rows.append(AgreementRow(name, tuple(cells), majority.get(name), ref, state))
    return rows
