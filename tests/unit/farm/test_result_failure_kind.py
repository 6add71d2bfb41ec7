"""A signed failure says whose it is (``failure_kind``, ADR 37).

A succeeded result carries no kind, and its signed bytes are what they were before the
field existed; a failed one says ``build`` or ``infrastructure``; a failed result that
does not say (signed before the field) is the build's own.
"""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from farm.keys import generate_key
from farm.result import envelope_payload, sign_result, verify_result
from tests.unit.farm.test_keys_and_results import predicate

KEY = generate_key()


def test_a_succeeded_result_signs_no_failure_kind() -> None:
    env = sign_result(predicate(KEY), KEY)
    assert "failure_kind" not in json.loads(envelope_payload(env))["predicate"]
    got = verify_result(env, [KEY.public])
    assert got.predicate.failure_kind is None and not got.predicate.infrastructure_failure


@pytest.mark.parametrize(
    ("kind", "infrastructure"), [("infrastructure", True), ("build", False), (None, False)]
)
def test_a_failed_result_says_whose_failure_it_is(kind: str | None, infrastructure: bool) -> None:
    failed = predicate(
        KEY, status="failed", exit_code=None, outputs=(), error="engine gone", failure_kind=kind
    )
    env = sign_result(failed, KEY)
    signed = json.loads(envelope_payload(env))["predicate"]
    assert signed.get("failure_kind") == kind
    got = verify_result(env, [KEY.public])
    assert got.predicate.infrastructure_failure is infrastructure


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"failure_kind": "infrastructure"}, "a succeeded build has no failure_kind"),
        ({"status": "failed", "outputs": (), "failure_kind": "weather"}, "failure_kind"),
    ],
)
def test_a_kind_that_does_not_fit_is_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        predicate(KEY, **changes)
