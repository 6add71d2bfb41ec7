"""The verdict of one build: status, who agreed, and the upstream comparison."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from farm.agreement import agreement_rows
from farm.errors import QuorumError
from farm.keys import KeyPair, generate_key
from farm.quorum import tally
from farm.recipe import Recipe, parse_recipe
from farm.result import OutputDigest, SignedResult, sign_result, verify_result
from farm.verdict import decide, require_verified
from tests.unit.farm.conftest import BASE_RECIPE
from tests.unit.farm.test_keys_and_results import predicate

KEYS = [generate_key() for _ in range(5)]
IDS = [k.keyid for k in KEYS]
A, B, U = "a" * 64, "b" * 64, "c" * 64
WHEEL = "demo-1.0.whl"


def recipe(upstream: str | None = None, quorum: int = 3) -> Recipe:
    data: dict[str, Any] = {**BASE_RECIPE, "quorum": quorum}
    if upstream is not None:
        data["upstream"] = [{"output": WHEEL, "sha256": upstream}]
    return parse_recipe(data)


def result(key: KeyPair, sha: str | None) -> SignedResult:
    outputs = () if sha is None else (OutputDigest(name=WHEEL, sha256=sha, size=1),)
    status = "failed" if sha is None else "succeeded"
    p = predicate(key, outputs=outputs, status=status)
    return verify_result(sign_result(p, key), [key.public])


@pytest.mark.parametrize(
    ("shas", "upstream", "status", "n_agreed", "n_dissent", "n_failed", "up_state"),
    [
        ([A, A, A], None, "verified", 3, 0, 0, "no reference"),
        ([A, A, A], A, "verified", 3, 0, 0, "match"),
        ([A, A, A], U, "verified", 3, 0, 0, "differ"),
        ([A, A, B], A, "disputed", 2, 1, 0, "match"),
        ([A, A, None], None, "failed", 2, 0, 1, "no reference"),
        ([A, A], None, "failed", 2, 0, 0, "no reference"),
        ([None, None, None], U, "failed", 0, 0, 3, "differ"),
        ([A, B, None], None, "disputed", 1, 1, 1, "no reference"),
        ([A, A, A, B], None, "disputed", 3, 1, 0, "no reference"),
    ],
)
def test_verdict_table(
    shas: list[str | None],
    upstream: str | None,
    status: str,
    n_agreed: int,
    n_dissent: int,
    n_failed: int,
    up_state: str,
) -> None:
    results = [result(k, sha) for k, sha in zip(KEYS, shas, strict=False)]
    v = decide(recipe(upstream), results, expected=IDS[:3])
    assert v.status == status
    assert (len(v.agreed), len(v.dissented), len(v.failed)) == (n_agreed, n_dissent, n_failed)
    (out,) = v.outputs
    assert out.upstream == up_state
    assert v.to_json()["status"] == status
    # The `farm build` table shows the verdict's comparison (under its shorter labels).
    rows = agreement_rows(recipe(upstream), results, IDS[:3], tally(results, 3, IDS[:3]))
    label = {"match": "match", "differ": "differ", "no reference": "none"}[up_state]
    assert [r.upstream_state for r in rows] == ([label] if any(shas) else [])
    assert all(r.upstream == upstream for r in rows)


def test_missing_builders_are_named() -> None:
    v = decide(recipe(), [result(KEYS[0], A)], expected=IDS[:3])
    assert v.status == "failed"
    assert v.missing == tuple(sorted(IDS[1:3]))
    assert "1/3 builders agree" in v.reason
    with pytest.raises(QuorumError, match="no result from"):
        require_verified(v)


def test_disputed_names_the_differing_output_and_digests() -> None:
    v = decide(recipe(), [result(KEYS[0], A), result(KEYS[1], A), result(KEYS[2], B)])
    (diff,) = v.differing_outputs()
    assert diff.name == WHEEL
    assert diff.produced == (A, B)
    assert diff.sha256 == A
    assert v.dissented == (IDS[2],)
    with pytest.raises(QuorumError, match="disputed"):
        require_verified(v)


def test_verified_gives_the_agreed_digest_set() -> None:
    v = decide(recipe(A), [result(k, A) for k in KEYS[:3]])
    assert require_verified(v) == ((WHEEL, A),)
    assert v.upstream_matches is True
    assert not v.differing_outputs()


def test_no_results_fail_closed() -> None:
    v = decide(recipe(), [])
    assert v.status == "failed"
    assert v.agreed == ()
    assert v.upstream_matches is None


@settings(max_examples=60, deadline=None)
@given(
    shas=st.lists(st.sampled_from([A, B, None]), min_size=0, max_size=5),
    quorum=st.integers(min_value=1, max_value=4),
    data=st.data(),
)
def test_verdict_does_not_depend_on_order(
    shas: list[str | None], quorum: int, data: st.DataObject
) -> None:
    results = [result(k, sha) for k, sha in zip(KEYS, shas, strict=False)]
    shuffled = data.draw(st.permutations(results))
    r = recipe(A, quorum)
    assert decide(r, results, IDS) == decide(r, shuffled, IDS)


def test_a_build_is_compared_only_with_its_architecture_s_upstream() -> None:
    """A compiled recipe's arm64 build has no x86_64 wheel: upstream's x86_64 wheel is not
    an output it failed to produce (it would read as differing from upstream)."""
    amd, arm = "demo-1.0-cp311-cp311-linux_x86_64.whl", "demo-1.0-cp311-cp311-linux_aarch64.whl"
    r = parse_recipe(
        {
            **BASE_RECIPE,
            "architectures": ["amd64", "arm64"],
            "images": {"arm64": "sha256:" + "cd" * 32},
            "outputs": [{"path": amd, "arch": "amd64"}, {"path": arm, "arch": "arm64"}],
            "upstream": [{"output": amd, "sha256": U}, {"output": arm, "sha256": A}],
        }
    )
    results = [
        verify_result(
            sign_result(predicate(k, outputs=(OutputDigest(name=arm, sha256=A, size=1),)), k),
            [k.public],
        )
        for k in KEYS[:3]
    ]
    v = decide(r, results, IDS[:3], "arm64")
    assert v.status == "verified"
    assert [(o.name, o.upstream) for o in v.outputs] == [(arm, "match")]
    assert v.upstream_matches
    rows = agreement_rows(r, results, IDS[:3], tally(results, 3, IDS[:3]), "arm64")
    assert [(row.output, row.upstream_state) for row in rows] == [(arm, "match")]
    # Without the architecture every reference counts, the other one's included.
    assert [(o.name, o.upstream) for o in decide(r, results, IDS[:3]).outputs] == [
        (arm, "match"),
        (amd, "differ"),
    ]
