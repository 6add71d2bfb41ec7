"""The agreement table of one build: outputs × builders, and the upstream match.

Pure: takes the tally and verified results, returns rows that the command line
renders. A cell says whether that builder's digest of that output is the majority's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from farm.quorum import Tally
from farm.recipe import Recipe
from farm.result import SignedResult

__all__ = ["AgreementRow", "Cell", "agreement_rows"]

CellState = Literal["agree", "differ", "missing", "failed"]
UpstreamState = Literal["match", "differ", "none"]


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
    recipe: Recipe, results: Sequence[SignedResult], builders: Sequence[str], t: Tally
) -> list[AgreementRow]:
    """Rows for every output any builder produced, in name order."""
    by_builder = {r.predicate.builder_id: r for r in results}
    majority = dict(t.majority.digests) if t.majority else {}
    names = sorted({name for r in results for name in r.digest_set()} | set(majority))
    upstream = {u.output: u.sha256 for u in recipe.upstream}
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
        ref = upstream.get(name)
        expected = majority.get(name)
        state: UpstreamState = "none" if ref is None else ("match" if ref == expected else "differ")
        rows.append(AgreementRow(name, tuple(cells), expected, ref, state))
    return rows
