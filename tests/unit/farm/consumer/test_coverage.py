"""``farm coverage``'s report: what the node answered, per requirement → rows and a verdict."""

from __future__ import annotations

import pytest

from farm.consumer.coverage import (
    CoverageReport,
    Observation,
    UpstreamListing,
    build_report,
    upstream_match,
)
from farm.consumer.trust import TrustMemory
from farm.consumer.verify import VerifiedArtifact
from farm.requirements import Pinned, parse_pinned

SHA = "ab" * 32
OTHER = "cd" * 32
WHEEL = "rich-13.9.4-py3-none-any.whl"


def _pin(line: str = "rich==13.9.4") -> Pinned:
    (pin,) = parse_pinned(line, "requirements.txt")
    return pin


def _verified(filename: str = WHEEL, sha: str = SHA) -> VerifiedArtifact:
    memory = TrustMemory(genesis_hash="0" * 64, tree_size=9, root_hash="1" * 64)
    return VerifiedArtifact(
        name="rich", version="13.9.4", arch="amd64", filename=filename, sha256=sha, size=10,
        builders=("b1", "b2", "b3"), coordinator="c", attestation_index=7, tree_size=9,
        checkpoint_time=0, checkpoint_age=1.0, memory=memory,
    )  # fmt: skip


def _one(obs: Observation, *, require_match: bool = False) -> CoverageReport:
    return build_report([obs], require_match=require_match)


def test_served_verified_and_upstreams_file_is_covered() -> None:
    report = _one(
        Observation(_pin(), "verified", (_verified(),), upstream=UpstreamListing({WHEEL: SHA}))
    )
    (row,) = report.rows
    assert (row.served, row.verified, row.matches_upstream, row.covered) == (
        "yes", "yes", "yes", True,
    )  # fmt: skip
    assert "3 builders agree, ledger index 7" in row.note
    assert report.ok and report.missing == ()
    assert report.summary() == "1/1 requirement(s) served and verified"
    assert report.as_json()["rows"][0]["files"] == [
        {"filename": WHEEL, "sha256": SHA, "arch": "amd64", "builders": 3}
    ]


@pytest.mark.parametrize(
    ("obs", "served", "verified", "note"),
    [
        (
            Observation(_pin(), "absent", message="the node has no release rich==13.9.4"),
            "no", "-", "the node has no release rich==13.9.4",
        ),
        (
            Observation(_pin(), "refused", message="refused rich…: the checkpoint is not trusted"),
            "yes", "no", "refused rich…: the checkpoint is not trusted",
        ),
        # Fail closed: "verified" with nothing that verified is not coverage.
        (Observation(_pin(), "verified"), "yes", "no", "no artifact verified"),
    ],
)  # fmt: skip
def test_missing_or_refused_is_not_covered(
    obs: Observation, served: str, verified: str, note: str
) -> None:
    report = _one(obs)
    (row,) = report.rows
    assert (row.served, row.verified, row.note, row.covered) == (served, verified, note, False)
    assert not report.ok
    assert report.missing == report.rows
    assert report.summary().endswith("missing or failing: rich==13.9.4")
    assert report.as_json()["missing"] == ["rich==13.9.4"]


def test_one_absent_requirement_fails_the_whole_list_and_is_named() -> None:
    good = Observation(_pin("mdurl==0.1.2"), "verified", (_verified("mdurl.whl"),))
    bad = Observation(_pin(), "absent", message="not served")
    report = build_report([good, bad])
    assert not report.ok
    assert [r.requirement for r in report.missing] == ["rich==13.9.4"]
    assert report.summary() == (
        "1/2 requirement(s) served and verified; missing or failing: rich==13.9.4"
    )
    assert report.as_json()["covered"] == 1 and report.as_json()["total"] == 2


def test_a_requirement_not_needed_here_neither_counts_nor_fails() -> None:
    skipped = Observation(_pin('tomli==2.0.1; python_version < "3.11"'), "not-needed")
    good = Observation(_pin("mdurl==0.1.2"), "verified", (_verified("mdurl.whl"),))
    report = build_report([skipped, good])
    assert report.ok
    assert report.rows[0].served == "-" and "not needed here" in report.rows[0].note
    assert report.summary() == "1/1 requirement(s) served and verified"


def test_no_requirements_is_not_ok() -> None:
    assert not build_report([]).ok


@pytest.mark.parametrize(
    ("listing", "column", "note"),
    [
        (None, "not checked", ""),
        (UpstreamListing(None, "pypi.org: HTTP 503"), "unknown", "upstream not read: pypi.org"),
        (UpstreamListing({WHEEL: SHA, "rich-13.9.4.tar.gz": OTHER}), "yes", ""),
        (UpstreamListing({WHEEL: OTHER}), "no", f"{WHEEL}: sha256 {SHA[:12]}…, upstream's is"),
        (UpstreamListing({"rich-13.9.4.tar.gz": OTHER}), "no", f"upstream has no {WHEEL}"),
    ],
)
def test_upstream_match(listing: UpstreamListing | None, column: str, note: str) -> None:
    got, why = upstream_match([_verified()], listing)
    assert got == column
    assert why.startswith(note)


def test_differing_from_upstream_fails_only_when_required() -> None:
    obs = Observation(_pin(), "verified", (_verified(),), upstream=UpstreamListing({WHEEL: OTHER}))
    assert _one(obs).ok
    assert _one(obs).rows[0].matches_upstream == "no"
    strict = _one(obs, require_match=True)
    assert not strict.ok and strict.as_json()["missing"] == ["rich==13.9.4"]
    unknown = Observation(_pin(), "verified", (_verified(),), upstream=None)
    assert not _one(unknown, require_match=True).ok
