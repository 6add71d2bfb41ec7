"""The quorum rule: a tally that never raises and a check that does."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from farm.errors import QuorumError
from farm.keys import KeyPair, generate_key
from farm.quorum import require_quorum, tally
from farm.result import OutputDigest, SignedResult, sign_result, verify_result
from tests.unit.farm.test_keys_and_results import predicate

KEYS = [generate_key() for _ in range(5)]
A, B = "a" * 64, "b" * 64


def result(key: KeyPair, sha: str | None, name: str = "x.whl", **changes: Any) -> SignedResult:
    outputs = () if sha is None else (OutputDigest(name=name, sha256=sha, size=1),)
    status = "failed" if sha is None else "succeeded"
    p = predicate(key, outputs=outputs, status=status, **changes)
    return verify_result(sign_result(p, key), [key.public])


@pytest.mark.parametrize(
    ("shas", "quorum", "verdict"),
    [
        ([A, A, A], 3, "verified"),
        ([A, A, A, A], 3, "verified"),
        ([A, A], 3, "failed"),
        ([A, A, None], 3, "failed"),
        ([A, A, B], 3, "disputed"),
        ([A, A, A, B], 3, "disputed"),
        ([A, B], 3, "disputed"),
        ([], 3, "failed"),
        ([None, None, None], 3, "failed"),
        ([A], 1, "verified"),
        ([A, A, A], 0, "failed"),
    ],
)
def test_verdicts(shas: list[str | None], quorum: int, verdict: str) -> None:
    results = [result(KEYS[i], sha) for i, sha in enumerate(shas)]
    t = tally(results, quorum)
    assert t.verdict == verdict
    if verdict == "verified":
        assert len(require_quorum(t).builders) >= quorum
    else:
        with pytest.raises(QuorumError, match=verdict):
            require_quorum(t)


def test_same_builder_twice_counts_once() -> None:
    results = [result(KEYS[0], A), result(KEYS[0], A), result(KEYS[1], A)]
    t = tally(results, 3)
    assert t.verdict == "failed"
    with pytest.raises(QuorumError, match="2/3 builders agree"):
        require_quorum(t)


def test_builder_signing_two_digest_sets_is_a_dispute() -> None:
    results = [result(KEYS[0], A), result(KEYS[0], B), result(KEYS[1], A), result(KEYS[2], A)]
    assert tally(results, 3).verdict == "disputed"


def test_message_names_dissenter_and_missing() -> None:
    results = [result(KEYS[0], A), result(KEYS[1], A), result(KEYS[2], B)]
    t = tally(results, 3, expected=[k.keyid for k in KEYS[:4]])
    with pytest.raises(QuorumError) as info:
        require_quorum(t)
    msg = str(info.value)
    assert "2/3 builders agree on x.whl sha256:aaaaaaaaaaaaaaaa" in msg
    assert f"builder {KEYS[2].keyid[:12]} produced x.whl sha256:bbbbbbbbbbbbbbbb" in msg
    assert f"no result from: {KEYS[3].keyid[:12]}" in msg
    assert t.dissenters == (KEYS[2].keyid,)


POOL = [result(k, sha) for k in KEYS for sha in (A, B, None)]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(POOL), max_size=8), st.randoms(), st.integers(1, 4))
def test_verdict_does_not_depend_on_order(
    results: list[SignedResult], rnd: Any, quorum: int
) -> None:
    shuffled = list(results)
    rnd.shuffle(shuffled)
    assert tally(results, quorum) == tally(shuffled, quorum)
