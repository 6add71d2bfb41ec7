"""Attestation lists on SQLite and a real PostgreSQL: every page is the model's dump, in
list order, with the right totals; a deep page reads the bundles of its own rows only."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, insert, text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from farm.coordinator import attestations
from farm.coordinator.models import Attestation, AttestationArtifact
from tests.unit.farm.coordinator._world import NOW

PAD = 3500
"""Random bytes per bundle, as hex: 7 kB of JSON that compresses to about 4 kB, so that
PostgreSQL keeps it out of line (TOAST), as it does a real bundle."""


def _row(i: int, pad: int) -> dict[str, Any]:
    """Attestation ``i``: three share each ``submitted_at`` (ties broken by tx_id); every
    eleventh was rejected."""
    return {
        "tx_id": hashlib.sha256(b"tx %d" % i).hexdigest(),
        "build_id": f"b{i:05d}",
        "status": "rejected" if i % 11 == 10 else "committed",
        "reason": "refused" if i % 11 == 10 else None,
        "name": f"pkg-{i % 7}",
        "version": f"1.{i % 3}",
        "arch": ("amd64", "arm64")[i % 2],
        "recipe_digest": f"sha256:{i % 5:064x}",
        "bundle": {
            "builder_envelopes": [{"signatures": [{"keyid": f"k{i % 4}"}, {"keyid": "k9"}]}],
            "pad": random.Random(i).randbytes(pad).hex(),
        },
        "ledger_index": i,
        "height": i // 8,
        "tree_size": i + 1,
        "inclusion_proof": [hashlib.sha256(b"p %d" % i).hexdigest()],
        "checkpoint": f"farm-test\n{i + 1}\n",
        "submitted_at": NOW + timedelta(minutes=i // 3),
    }


def _artifact(i: int, k: int) -> str:
    return hashlib.sha256(b"artifact %d %d" % (i, k)).hexdigest()


def _store(engine: Engine, count: int, pad: int) -> list[dict[str, Any]]:
    """``count`` attestations (each with one or two artifacts); the rows as stored."""
    rows = [_row(i, pad) for i in range(count)]
    arts = [
        {"tx_id": r["tx_id"], "name": f"out-{k}.whl", "sha256": _artifact(i, k)}
        for i, r in enumerate(rows)
        for k in range(1 + i % 2)
    ]
    with engine.begin() as conn:
        for start in range(0, count, 500):
            conn.execute(insert(Attestation), rows[start : start + 500])
        conn.execute(insert(AttestationArtifact), arts)
    return rows


def _listed(rows: list[dict[str, Any]], **filters: str) -> list[str]:
    """tx_ids of ``rows`` that match ``filters``, in list order (newest first, then tx_id)."""
    status = filters.pop("status", "committed")
    sha = filters.pop("sha256", "").removeprefix("sha256:")
    kept = [
        r
        for i, r in enumerate(rows)
        if r["status"] == status
        and all(r[k] == v for k, v in filters.items())
        and (not sha or sha in {_artifact(i, 0), _artifact(i, 1)})
    ]
    kept.sort(key=lambda r: r["tx_id"])
    kept.sort(key=lambda r: r["submitted_at"], reverse=True)
    return [r["tx_id"] for r in kept]


FILTERS: list[dict[str, Any]] = [
    {},
    {"arch": "arm64"},
    {"name": "pkg-3"},
    {"name": "pkg-3", "version": "1.1"},
    {"recipe_digest": f"sha256:{2:064x}"},
    {"sha256": f"sha256:{_artifact(13, 1)}"},
    {"status": "rejected"},
    {"name": "pkg-1", "arch": "amd64"},
]


@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: "+".join(f) or "all")
def test_every_page_is_the_model_dump_in_list_order(
    session: Session, engine: Engine, filters: dict[str, Any]
) -> None:
    rows = _store(engine, 60, 40)
    expected = _listed(rows, **filters)
    assert expected, "every case lists something"
    seen: list[str] = []
    for offset in range(0, len(expected) + 7, 4):  # first, later, last pages and past the end
        fast = json.loads(
            attestations.list_attestations_json(session, limit=4, offset=offset, **filters)
        )
        model = attestations.list_attestations(session, limit=4, offset=offset, **filters)
        assert fast == model.model_dump(mode="json")
        assert fast["total"] == len(expected)
        end = offset + len(fast["items"])
        assert fast["next_offset"] == (end if end < len(expected) else None)
        seen.extend(item["tx_id"] for item in fast["items"])
    assert seen == expected
    first = attestations.list_attestations(session, limit=1, offset=1, **filters).items
    if first:
        assert attestations.get_attestation(session, first[0].tx_id) == first[0]


_TEXT = "bundle)::text"
"""How EXPLAIN VERBOSE shows the bundle converted to text, e.g. ``(attestation.bundle)::text``."""


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from _nodes(child)


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
@pytest.mark.parametrize(
    ("filters", "offset"), [({}, 1700), ({"arch": "amd64"}, 850)], ids=["page", "arch"]
)
def test_a_deep_page_reads_the_bundles_of_its_own_rows_only(
    session: Session, engine: Engine, filters: dict[str, Any], offset: int
) -> None:
    """Counted in plan rows and buffers, not in milliseconds (the machine may be busy):
    the rows skipped to reach ``offset`` are read from an index, their bundles never."""
    limit = 20
    rows = _store(engine, 2000, PAD)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE attestation"))  # as autovacuum leaves a live table
        conn.execute(text("VACUUM ANALYZE attestationartifact"))
    statements: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        page = json.loads(
            attestations.list_attestations_json(session, limit=limit, offset=offset, **filters)
        )
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    expected = _listed(rows, **filters)
    assert len(expected) > offset + limit, "the page is a full one"
    assert [item["tx_id"] for item in page["items"]] == expected[offset : offset + limit]
    assert page["total"] == len(expected)

    ((statement, parameters),) = [(s, p) for s, p in statements if "bundle" in s]
    with engine.connect() as conn:
        explain = "EXPLAIN (ANALYZE, VERBOSE, BUFFERS, FORMAT JSON) " + statement
        (plan,) = conn.exec_driver_sql(explain, parameters).scalar_one()
    top = plan["Plan"]
    # A scan may pass a row's bundle on untouched (a TOAST pointer); converting it to
    # text reads it. Only nodes that hold the page's own rows may do that.
    converting = [n for n in _nodes(top) if any(_TEXT in out for out in n.get("Output", ()))]
    assert converting
    for node in converting:
        read = node["Actual Rows"] * node["Actual Loops"]
        assert read <= limit, f"{node['Node Type']} converts the bundles of {read:g} rows"
    # Skipped rows cost index entries (hundreds per block), not a block each or more.
    blocks = top["Shared Hit Blocks"] + top["Shared Read Blocks"]
    assert blocks < offset, f"{blocks} blocks read for a page at offset {offset}"
