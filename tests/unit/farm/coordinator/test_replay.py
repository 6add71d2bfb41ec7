"""The replay check of signed builder requests lives in the database (SQLite and a real
PostgreSQL): a (builder, nonce) is accepted once, still after a restart, and pruned only
once its request cannot pass the timestamp window. Two replicas racing on one nonce:
tests/integration/test_coordinator_receipts.py."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from farm.coordinator.auth import SignedRequest, sign_request
from farm.coordinator.errors import AuthenticationError
from farm.coordinator.models import SeenRequest
from farm.coordinator.replay import ReplayGuard
from farm.keys import KeyPair, generate_key

KEY = generate_key()
OTHER = generate_key()
T = 1_760_000_000.0


def _signed(key: KeyPair = KEY, at: float = T) -> SignedRequest:
    return SignedRequest.from_headers(sign_request(key, "PUT", "/v1/x", b"", at))


def test_a_pair_is_accepted_once_and_remembered_after_a_restart(engine: Engine) -> None:
    a, b = _signed(), _signed()
    guard = ReplayGuard(engine)
    guard.check_and_add(a, T, 300)
    guard.check_and_add(b, T, 300)
    same_nonce_other_builder = SignedRequest(OTHER.keyid, a.timestamp, a.nonce, a.signature)
    guard.check_and_add(same_nonce_other_builder, T, 300)
    with pytest.raises(AuthenticationError, match="replay"):
        guard.check_and_add(a, T + 1, 300)
    with pytest.raises(AuthenticationError, match="replay"):  # a new process, same database
        ReplayGuard(engine).check_and_add(b, T + 2, 300)


def test_pairs_are_pruned_only_once_their_requests_cannot_pass_the_window(
    engine: Engine,
) -> None:
    old, recent = _signed(at=T - 601), _signed(at=T - 599)
    guard = ReplayGuard(engine, prune_every=0)
    guard.check_and_add(old, T - 601, 300)
    guard.check_and_add(recent, T - 599, 300)
    guard.check_and_add(_signed(), T, 300)  # prunes rows older than twice the window
    with Session(engine) as session:
        kept = {r.nonce for r in session.exec(select(SeenRequest))}
    assert old.nonce not in kept and recent.nonce in kept
    with pytest.raises(AuthenticationError, match="replay"):
        guard.check_and_add(recent, T, 300)
