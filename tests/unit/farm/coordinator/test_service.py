"""Coordinator operations: enrollment, heartbeats, results intake and the verdict."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from farm.coordinator import service
from farm.coordinator.auth import hash_secret
from farm.coordinator.errors import (
    AuthenticationError,
    ConflictError,
    EnrollmentError,
    ResultRefusedError,
    StagingError,
)
from farm.coordinator.models import BuilderCreate, BuildResultRow, EnrollmentToken
from farm.coordinator.staging import Staging
from farm.keys import KeyPair, generate_key
from tests.unit.farm.coordinator._world import BAD, GOOD, NOW, WHEEL, envelope, recipe, sha

KEYS = [generate_key() for _ in range(4)]


def enroll(
    session: Session, key: KeyPair, *, approve: bool = True, host: str = "", domain: str = ""
) -> None:
    token = service.issue_enrollment_token(session, NOW)
    req = BuilderCreate(
        token=token.token,
        public_key=key.public_dict(),
        hostname=host or f"host-{key.keyid[:6]}",
        arches=["amd64"],
    )
    service.enroll(session, req, NOW)
    if approve:
        service.approve(session, key.keyid, NOW, domain or f"site-{key.keyid[:6]}")


@pytest.fixture
def staging(tmp_path: Path) -> Staging:
    return Staging(tmp_path / "staging")


def test_token_is_stored_hashed_and_enrolls_once(session: Session) -> None:
    token = service.issue_enrollment_token(session, NOW, ttl_seconds=600)
    (row,) = session.exec(select(EnrollmentToken)).all()
    assert row.token_sha256 == hash_secret(token.token)
    assert token.token not in str(row.model_dump())
    req = BuilderCreate(
        token=token.token, public_key=KEYS[0].public_dict(), hostname="h1", arches=["amd64"]
    )
    builder = service.enroll(session, req, NOW)
    assert builder.id == KEYS[0].keyid
    assert not builder.approved
    req2 = req.model_copy(update={"public_key": KEYS[1].public_dict()})
    with pytest.raises(EnrollmentError, match="already used"):
        service.enroll(session, req2, NOW)


@pytest.mark.parametrize(
    ("token", "when", "message"),
    [
        ("not-a-real-token-at-all", NOW, "not known"),
        (None, NOW + timedelta(seconds=601), "expired"),
    ],
)
def test_bad_tokens_are_named(
    session: Session, token: str | None, when: object, message: str
) -> None:
    issued = service.issue_enrollment_token(session, NOW, ttl_seconds=600)
    req = BuilderCreate(
        token=token or issued.token,
        public_key=KEYS[0].public_dict(),
        hostname="h",
        arches=["amd64"],
    )
    with pytest.raises(EnrollmentError, match=message):
        service.enroll(session, req, when)  # type: ignore[arg-type]


def test_same_key_cannot_enroll_twice(session: Session) -> None:
    enroll(session, KEYS[0])
    with pytest.raises(ConflictError, match="already enrolled"):
        enroll(session, KEYS[0])


def test_operator_token(session: Session) -> None:
    secret = service.create_operator_token(session, NOW)
    assert service.authenticate_operator(session, secret).name == "operator"
    for bad in (None, "", secret + "x"):
        with pytest.raises(AuthenticationError):
            service.authenticate_operator(session, bad)


def test_healthy_builders_are_approved_and_recently_seen(session: Session) -> None:
    enroll(session, KEYS[0])
    enroll(session, KEYS[1])
    enroll(session, KEYS[2], approve=False)
    for key in KEYS[:3]:
        service.heartbeat(session, key.keyid, NOW)
    service.heartbeat(session, KEYS[1].keyid, NOW - timedelta(seconds=10))
    healthy = service.healthy_builders(session, "amd64", NOW + timedelta(seconds=55))
    assert [b.id for b in healthy] == [KEYS[0].keyid]
    assert service.healthy_builders(session, "arm64", NOW) == []


def setup_build(session: Session, staging: Staging, upstream: bytes | None = None) -> str:
    for key in KEYS[:3]:
        enroll(session, key)
    service.create_build(
        session, recipe(upstream), "amd64", [k.keyid for k in KEYS[:3]], "build-0001", NOW
    )
    return "build-0001"


def upload(session: Session, staging: Staging, key: KeyPair, data: bytes) -> None:
    service.record_upload(session, staging, key.keyid, sha(data), data, NOW)


def test_three_agreeing_results_are_verified(session: Session, staging: Staging) -> None:
    build_id = setup_build(session, staging, upstream=GOOD)
    for key in KEYS[:3]:
        upload(session, staging, key, GOOD)
        service.record_result(
            session, staging, build_id, key.keyid, envelope(key, recipe(GOOD), build_id), NOW
        )
    view = service.build_public(session, build_id)
    assert view.status == "verified"
    assert view.verdict is not None
    assert view.verdict["outputs"][0]["upstream"] == "match"
    assert [r.status for r in view.results] == ["accepted"] * 3
    assert view.results[0].outputs[0].name == WHEEL
    builder = service.get_builder(session, KEYS[0].keyid)
    assert (builder.builds_done, builder.agreements) == (1, 1)


def test_disagreement_is_disputed(session: Session, staging: Staging) -> None:
    build_id = setup_build(session, staging)
    r = recipe()
    for key, data in zip(KEYS[:3], (GOOD, GOOD, BAD), strict=True):
        upload(session, staging, key, data)
        service.record_result(
            session, staging, build_id, key.keyid, envelope(key, r, build_id, data), NOW
        )
    build = service.get_build(session, build_id)
    assert build.status == "disputed"
    assert build.verdict is not None
    assert build.verdict["dissented"] == [KEYS[2].keyid]


def test_missing_builder_fails_only_when_forced(session: Session, staging: Staging) -> None:
    build_id = setup_build(session, staging)
    upload(session, staging, KEYS[0], GOOD)
    service.record_result(
        session, staging, build_id, KEYS[0].keyid, envelope(KEYS[0], recipe(), build_id), NOW
    )
    assert service.get_build(session, build_id).status == "running"
    verdict = service.finalize(session, build_id, NOW, force=True)
    assert verdict is not None
    assert verdict.status == "failed"
    assert set(verdict.missing) == {KEYS[1].keyid, KEYS[2].keyid}


def refusals(session: Session) -> list[str]:
    rows = session.exec(select(BuildResultRow).where(BuildResultRow.status == "refused"))
    return [r.reason or "" for r in rows]


def test_signed_digest_not_matching_uploaded_bytes_is_refused(
    session: Session, staging: Staging
) -> None:
    build_id = setup_build(session, staging)
    key = KEYS[0]
    upload(session, staging, key, BAD)  # uploads other bytes than it signs for
    env = envelope(key, recipe(), build_id, BAD, claimed=GOOD)
    with pytest.raises(ResultRefusedError, match="was not uploaded to staging"):
        service.record_result(session, staging, build_id, key.keyid, env, NOW)
    assert refusals(session) == [f"output {WHEEL} sha256:{sha(GOOD)} was not uploaded to staging"]


def test_upload_under_a_false_digest_is_refused(session: Session, staging: Staging) -> None:
    with pytest.raises(StagingError, match="not"):
        service.record_upload(session, staging, KEYS[0].keyid, sha(GOOD), BAD, NOW)
    assert not staging.has(sha(GOOD))


def test_tampered_staged_blob_is_refused(session: Session, staging: Staging) -> None:
    build_id = setup_build(session, staging)
    key = KEYS[0]
    upload(session, staging, key, GOOD)
    path = staging.path_for(sha(GOOD))
    path.chmod(0o644)
    path.write_bytes(BAD)
    with pytest.raises(ResultRefusedError, match="no longer has that digest"):
        service.record_result(
            session, staging, build_id, key.keyid, envelope(key, recipe(), build_id), NOW
        )


def test_replayed_result_from_another_build_is_refused(session: Session, staging: Staging) -> None:
    build_id = setup_build(session, staging)
    service.create_build(session, recipe(), "amd64", [k.keyid for k in KEYS[:3]], "build-0002", NOW)
    key = KEYS[0]
    upload(session, staging, key, GOOD)
    old = envelope(key, recipe(), build_id)
    service.record_result(session, staging, build_id, key.keyid, old, NOW)
    with pytest.raises(ResultRefusedError, match="another build id"):
        service.record_result(session, staging, "build-0002", key.keyid, old, NOW)
    rows = session.exec(select(BuildResultRow).where(BuildResultRow.build_id == "build-0002")).all()
    assert [(r.status, r.envelope) for r in rows] == [("refused", old)]


def test_result_signed_by_an_unenrolled_key_is_refused(session: Session, staging: Staging) -> None:
    build_id = setup_build(session, staging)
    stranger = generate_key()
    upload(session, staging, KEYS[0], GOOD)
    env = envelope(stranger, recipe(), build_id)
    with pytest.raises(ResultRefusedError, match="not known"):
        service.record_result(session, staging, build_id, KEYS[0].keyid, env, NOW)
    with pytest.raises(ResultRefusedError, match="not enrolled"):
        service.record_result(session, staging, build_id, stranger.keyid, env, NOW)
    assert len(refusals(session)) == 2


def test_builder_not_asked_and_wrong_recipe_are_refused(session: Session, staging: Staging) -> None:
    build_id = setup_build(session, staging)
    enroll(session, KEYS[3])
    upload(session, staging, KEYS[3], GOOD)
    with pytest.raises(ResultRefusedError, match="was not asked"):
        service.record_result(
            session, staging, build_id, KEYS[3].keyid, envelope(KEYS[3], recipe(), build_id), NOW
        )
    env = envelope(KEYS[0], recipe(), build_id, recipe_digest="sha256:" + "9" * 64)
    with pytest.raises(ResultRefusedError, match="another recipe digest"):
        service.record_result(session, staging, build_id, KEYS[0].keyid, env, NOW)


def test_identical_resend_is_idempotent_and_different_one_refused(
    session: Session, staging: Staging
) -> None:
    build_id = setup_build(session, staging)
    key = KEYS[0]
    upload(session, staging, key, GOOD)
    upload(session, staging, key, BAD)
    env = envelope(key, recipe(), build_id)
    first = service.record_result(session, staging, build_id, key.keyid, env, NOW)
    again = service.record_result(session, staging, build_id, key.keyid, env, NOW)
    assert first.id == again.id
    with pytest.raises(ResultRefusedError, match="different result"):
        service.record_result(
            session, staging, build_id, key.keyid, envelope(key, recipe(), build_id, BAD), NOW
        )


def test_a_build_is_decided_once(session: Session, staging: Staging) -> None:
    build_id = setup_build(session, staging)
    for key in KEYS[:3]:
        upload(session, staging, key, GOOD)
        env = envelope(key, recipe(), build_id)
        service.record_result(session, staging, build_id, key.keyid, env, NOW)
    assert service.finalize(session, build_id, NOW, force=True) is None
    assert service.get_builder(session, KEYS[0].keyid).agreements == 1
    late = envelope(KEYS[3], recipe(), build_id)
    enroll(session, KEYS[3])
    with pytest.raises(ResultRefusedError, match="not asked"):
        service.record_result(session, staging, build_id, KEYS[3].keyid, late, NOW)


def test_pick_builders_never_two_in_one_domain(session: Session) -> None:
    # Hosts do not matter; the domains the operator assigned do.
    enroll(session, KEYS[0], host="one-machine", domain="org-a")
    enroll(session, KEYS[1], host="one-machine", domain="org-a")
    enroll(session, KEYS[2], host="one-machine", domain="org-b")
    for key in KEYS[:3]:
        service.heartbeat(session, key.keyid, NOW)
    picked = service.pick_builders(session, "amd64", 2, NOW)
    assert sorted(b.domain or "" for b in picked) == ["org-a", "org-b"]
    with pytest.raises(ConflictError, match="available in 2"):
        service.pick_builders(session, "amd64", 3, NOW)
    # A replacement avoids the domains already asked.
    (spare,) = service.pick_builders(
        session, "amd64", 1, NOW, exclude={KEYS[2].keyid}, avoid_domains={"org-b"}
    )
    assert spare.domain == "org-a"
    with pytest.raises(ConflictError):
        service.pick_builders(session, "amd64", 1, NOW, avoid_domains={"org-a", "org-b"})


def test_a_builder_approved_without_a_domain_is_a_domain_of_its_own(session: Session) -> None:
    enroll(session, KEYS[0], approve=False)
    builder = service.approve(session, KEYS[0].keyid, NOW, "org-a")
    builder.domain = None  # as a row approved before migration 0008 reads
    assert service.domain_of(builder) == f"builder:{KEYS[0].keyid}"


def test_approval_keeps_the_domain_of_a_builder_on_the_ledger(session: Session) -> None:
    enroll(session, KEYS[0], domain="org-a")
    builder = service.get_builder(session, KEYS[0].keyid)
    builder.ledger_index = 3
    session.add(builder)
    session.commit()
    with pytest.raises(ConflictError, match="enrolled on the ledger in domain 'org-a'"):
        service.approve(session, KEYS[0].keyid, NOW, "org-b")
    assert service.approve(session, KEYS[0].keyid, NOW, "org-a").domain == "org-a"
