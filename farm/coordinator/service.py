"""The coordinator's operations over a database session.

Each function takes a :class:`sqlmodel.Session` and the current time (the clock is a
parameter, so tests need none), does one thing and commits it. HTTP handlers and the
command line are thin wrappers around these.

Invariants:
  * secrets are returned once, when made, and stored only as sha256;
  * builders are scheduled from distinct independence domains, the ones the operator
    assigned at approval (ADR 35); the coordinator relays operator-signed enroll
    transactions and signs none itself (ADR 34);
  * an enrollment token enrolls exactly one builder (claimed by a conditional update,
    so two concurrent enrollments cannot both use it);
  * a builder result is accepted only if its envelope verifies against the builder's
    *enrolled* key, it answers this build (build id, recipe digest, architecture, the
    authenticated builder, one the build asked), and every output it claims is staged
    with exactly those bytes; anything else is stored as ``refused`` with its reason
    and then raised as :class:`ResultRefusedError` — never silently dropped;
  * the verdict is computed from accepted results only, once every builder asked has
    answered (or when forced), and stored with the build.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from farm.coordinator.auth import hash_secret, new_secret, secret_matches
from farm.coordinator.errors import (
    AuthenticationError,
    BadRequestError,
    ConflictError,
    EnrollmentError,
    NotFoundError,
    PermissionDeniedError,
    ResultRefusedError,
    StagingError,
)
from farm.coordinator.models import (
    AttemptPublic,
    Build,
    BuildAttempt,
    Builder,
    BuilderCreate,
    BuildPage,
    BuildPublic,
    BuildResultPublic,
    BuildResultRow,
    BuildSummaryPublic,
    EnrollmentToken,
    EnrollmentTokenPublic,
    OperatorToken,
    Output,
    OutputPublic,
    StagingBlob,
)
from farm.coordinator.staging import Staging, check_digest
from farm.cross_arch import compare_arches, require_cross_arch
from farm.errors import FarmError, QuorumError, RecipeError, SignatureError, SigningKeyError
from farm.keys import public_key_from_dict
from farm.recipe import ARCHITECTURES, Recipe, parse_recipe
from farm.result import SignedResult, envelope_payload, parse_statement, verify_result
from farm.transactions import EnrollTx
from farm.verdict import Verdict, decide

__all__ = [
    "approve",
    "authenticate_operator",
    "build_public",
    "create_build",
    "create_operator_token",
    "enroll",
    "finalize",
    "get_build",
    "get_builder",
    "healthy_builders",
    "heartbeat",
    "issue_enrollment_token",
    "list_builders",
    "list_builds",
    "pick_builders",
    "record_result",
    "record_upload",
    "retire",
]

log = logging.getLogger(__name__)


# ---- tokens ------------------------------------------------------------------------------


def issue_enrollment_token(
    session: Session, now: datetime, *, ttl_seconds: int = 3600, note: str = ""
) -> EnrollmentTokenPublic:
    """Make a one-time enrollment token; the returned secret is never shown again."""
    secret = new_secret()
    row = EnrollmentToken(
        token_sha256=hash_secret(secret),
        note=note,
        created_at=now,
        expires_at=now + timedelta(seconds=ttl_seconds),
    )
    session.add(row)
    session.commit()
    assert row.id is not None
    return EnrollmentTokenPublic(id=row.id, token=secret, expires_at=row.expires_at, note=note)


def create_operator_token(session: Session, now: datetime, name: str = "operator") -> str:
    """Make an operator bearer token; return its secret (stored only hashed)."""
    secret = new_secret()
    session.add(OperatorToken(token_sha256=hash_secret(secret), name=name, created_at=now))
    session.commit()
    return secret


def authenticate_operator(session: Session, secret: str | None) -> OperatorToken:
    """The operator token ``secret`` names; raise :class:`AuthenticationError` otherwise."""
    if not secret:
        raise AuthenticationError("operator token required (Authorization: Bearer <token>)")
    digest = hash_secret(secret)
    row = session.exec(select(OperatorToken).where(OperatorToken.token_sha256 == digest)).first()
    if row is None or row.revoked or not secret_matches(secret, row.token_sha256):
        raise AuthenticationError("operator token is not valid")
    return row


# ---- builders ----------------------------------------------------------------------------


def enroll(session: Session, request: BuilderCreate, now: datetime) -> Builder:
    """Register a builder's key and architectures with a one-time token (pending approval).

    Raises :class:`EnrollmentError` for an unknown, used or expired token,
    :class:`ConflictError` if the key is already enrolled, and
    :class:`PermissionDeniedError` for an unusable key or architecture.
    """
    try:
        key = public_key_from_dict(request.public_key)
    except SigningKeyError as exc:
        raise PermissionDeniedError(f"public key refused: {exc}") from None
    unknown = sorted(set(request.arches) - set(ARCHITECTURES))
    if unknown:
        raise PermissionDeniedError(f"unknown architecture(s): {', '.join(unknown)}")
    token = session.exec(
        select(EnrollmentToken).where(EnrollmentToken.token_sha256 == hash_secret(request.token))
    ).first()
    if token is None:
        raise EnrollmentError("enrollment token is not known")
    if token.used_at is not None:
        raise EnrollmentError(f"enrollment token {token.id} was already used")
    if token.expires_at <= now:
        raise EnrollmentError(
            f"enrollment token {token.id} expired at {token.expires_at.isoformat()}"
        )
    if session.get(Builder, key.keyid) is not None:
        raise ConflictError(f"builder {key.keyid[:12]} is already enrolled")
    claimed = session.execute(
        update(EnrollmentToken)
        .where(col(EnrollmentToken.id) == token.id, col(EnrollmentToken.used_at).is_(None))
        .values(used_at=now, used_by=key.keyid)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        raise EnrollmentError(f"enrollment token {token.id} was already used")
    builder = Builder(
        id=key.keyid,
        public_key={"keyid": key.keyid, **key.to_dict()},
        hostname=request.hostname,
        arches=sorted(set(request.arches)),
        enrolled_at=now,
    )
    session.add(builder)
    session.commit()
    log.info("builder %s enrolled from %s (pending approval)", key.keyid[:12], request.hostname)
    return builder


def get_builder(session: Session, builder_id: str) -> Builder:
    """The enrolled builder ``builder_id``; raise :class:`NotFoundError` if none."""
    builder = session.get(Builder, builder_id)
    if builder is None:
        raise NotFoundError(f"builder {builder_id[:64]} is not enrolled")
    return builder


def list_builders(session: Session) -> list[Builder]:
    """Every enrolled builder, by enrollment time."""
    return list(session.exec(select(Builder).order_by(col(Builder.enrolled_at), col(Builder.id))))


def approve(
    session: Session,
    builder_id: str,
    now: datetime,
    domain: str,
    enroll_tx: EnrollTx | None = None,
    enroll_bytes: bytes | None = None,
) -> Builder:
    """Approve an enrolled builder in independence ``domain`` so it may be scheduled and
    send results; with ``enroll_tx`` (already checked as operator-signed, see
    :mod:`farm.coordinator.operator_txs`) and its exact ``enroll_bytes``, record the
    transaction the ledger publisher relays.

    Approving again with the same domain changes nothing but may bring a new enroll
    transaction (after the ledger refused one); another domain is allowed only while the
    builder is not on the ledger.

    Raises:
        NotFoundError: no such builder.
        BadRequestError: the transaction enrolls another key or another domain.
        ConflictError: the builder is on the ledger in another domain.
    """
    builder = get_builder(session, builder_id)
    if enroll_tx is not None:
        keyid = str(enroll_tx.key.get("keyid", ""))
        if keyid != builder.id:
            raise BadRequestError(
                f"the enroll transaction is for key {keyid[:12]}, not builder {builder.id[:12]}"
            )
        if enroll_tx.domain != domain:
            raise BadRequestError(
                f"the enroll transaction names domain {enroll_tx.domain!r}, the approval {domain!r}"
            )
    if builder.ledger_index is not None and builder.domain != domain:
        raise ConflictError(
            f"builder {builder.id[:12]} is enrolled on the ledger in domain {builder.domain!r}; "
            "retire it and enroll a new key to move it"
        )
    if builder.ledger_index is None and enroll_tx is not None and enroll_bytes is not None:
        builder.enroll_tx = enroll_bytes.decode("utf-8")
        builder.ledger_error = None
    if not builder.approved:
        builder.approved = True
        builder.approved_at = now
    builder.domain = domain
    session.add(builder)
    session.commit()
    log.info("builder %s approved in domain %s", builder_id[:12], domain)
    return builder


def retire(session: Session, builder_id: str) -> Builder:
    """Withdraw an enrolled builder's approval: it is no longer scheduled and its results
    are refused (the ledger's retire transaction is the caller's, see the route)."""
    builder = get_builder(session, builder_id)
    if builder.approved:
        builder.approved = False
        builder.approved_at = None
        session.add(builder)
        session.commit()
        log.info("builder %s retired", builder_id[:12])
    return builder


def heartbeat(session: Session, builder_id: str, now: datetime) -> Builder:
    """Record that ``builder_id`` was heard from at ``now``."""
    builder = get_builder(session, builder_id)
    builder.last_seen = now
    session.add(builder)
    session.commit()
    return builder


def healthy_builders(
    session: Session, arch: str, now: datetime, *, within_seconds: float = 60.0
) -> list[Builder]:
    """Approved builders of ``arch`` heard from within the last ``within_seconds``."""
    since = now - timedelta(seconds=within_seconds)
    rows = session.exec(
        select(Builder).where(col(Builder.approved).is_(True), col(Builder.last_seen) >= since)
    )
    return sorted((b for b in rows if arch in b.arches), key=lambda b: b.id)


def domain_of(builder: Builder) -> str:
    """The builder's independence domain; one approved before domains existed (none
    recorded) is a domain of its own, so it never stands in for another builder."""
    return builder.domain or f"builder:{builder.id}"


def pick_builders(
    session: Session,
    arch: str,
    count: int,
    now: datetime,
    *,
    within_seconds: float = 60.0,
    exclude: Collection[str] = (),
    avoid_domains: Collection[str] = (),
) -> list[Builder]:
    """``count`` healthy builders of ``arch`` from distinct independence domains, least
    busy first.

    Builders in ``exclude`` and builders in ``avoid_domains`` (those of the builders
    already asked) are not chosen. Raises :class:`ConflictError` naming how many
    distinct domains are available when there are fewer than ``count`` (fail closed:
    never schedule a build short of quorum; the ledger would refuse its attestation).
    """
    candidates = sorted(
        (
            b
            for b in healthy_builders(session, arch, now, within_seconds=within_seconds)
            if b.id not in exclude and domain_of(b) not in avoid_domains
        ),
        key=lambda b: (b.builds_done, b.id),
    )
    by_domain: dict[str, Builder] = {}
    for b in candidates:
        by_domain.setdefault(domain_of(b), b)
    chosen = sorted(by_domain.values(), key=lambda b: (b.builds_done, b.id))[:count]
    if len(chosen) < count:
        raise ConflictError(
            f"{count} builders of {arch} in distinct independence domains are needed; "
            f"healthy ones are available in {len(chosen)}"
        )
    return chosen


# ---- builds -----------------------------------------------------------------------------


def create_build(
    session: Session,
    recipe: Recipe,
    arch: str,
    builders: Sequence[str],
    build_id: str,
    now: datetime,
) -> Build:
    """Record a build of ``recipe`` on ``arch`` that asks ``builders``."""
    if arch not in recipe.architectures:
        raise RecipeError(f"{recipe.label} is not built for {arch}")
    if session.get(Build, build_id) is not None:
        raise ConflictError(f"build {build_id} already exists")
    build = Build(
        id=build_id,
        recipe_digest=recipe.digest,
        recipe=recipe.canonical_form(),
        name=recipe.name,
        version=recipe.version,
        arch=arch,
        quorum=recipe.quorum,
        builders=list(dict.fromkeys(builders)),
        status="pending",
        created_at=now,
        updated_at=now,
    )
    session.add(build)
    session.commit()
    return build


def get_build(session: Session, build_id: str) -> Build:
    """The build ``build_id``; raise :class:`NotFoundError` if none."""
    build = session.get(Build, build_id)
    if build is None:
        raise NotFoundError(f"build {build_id[:64]} does not exist")
    return build


def record_upload(
    session: Session,
    staging: Staging,
    builder_id: str,
    digest: str,
    data: bytes,
    now: datetime,
) -> StagingBlob:
    """Stage ``data`` under ``digest`` for ``builder_id``; refuse bytes of another digest."""
    check_digest(digest)
    size = staging.put(digest, data)
    blob = session.get(StagingBlob, digest)
    if blob is None:
        blob = StagingBlob(sha256=digest, size=size, uploaded_by=builder_id, uploaded_at=now)
        session.add(blob)
        session.commit()
    return blob


def _refuse(
    session: Session,
    build_id: str,
    builder_id: str,
    envelope: dict[str, Any],
    reason: str,
    now: datetime,
) -> ResultRefusedError:
    row = BuildResultRow(
        build_id=build_id[:64],
        builder_id=builder_id[:64],
        received_at=now,
        envelope=envelope,
        status="refused",
        reason=reason,
    )
    session.add(row)
    session.commit()
    log.warning("result from %s for build %s refused: %s", builder_id[:12], build_id, reason)
    return ResultRefusedError(reason, row.id)


def _check_answers(result: SignedResult, build: Build, builder_id: str) -> str | None:
    p = result.predicate
    expected = {
        "build id": (p.build_id, build.id),
        "recipe digest": (p.recipe_digest, build.recipe_digest),
        "architecture": (p.arch, build.arch),
        "builder": (p.builder_id, builder_id),
    }
    for what, (got, want) in expected.items():
        if got != want:
            return f"result is for another {what}: {got} (this build expects {want})"
    if builder_id not in build.builders:
        return f"builder {builder_id[:12]} was not asked to build {build.id}"
    return None


def _check_outputs(session: Session, staging: Staging, result: SignedResult) -> str | None:
    for output in result.predicate.outputs:
        blob = session.get(StagingBlob, output.sha256)
        if blob is None:
            return f"output {output.name} sha256:{output.sha256} was not uploaded to staging"
        try:
            size = staging.verify(output.sha256)
        except (NotFoundError, StagingError) as exc:
            return f"output {output.name}: {exc}"
        if size != output.size:
            return f"output {output.name} is {output.size} bytes in the result, {size} staged"
    return None


def record_result(
    session: Session,
    staging: Staging,
    build_id: str,
    builder_id: str,
    envelope: dict[str, Any],
    now: datetime,
) -> BuildResultRow:
    """Check and record the result ``builder_id`` (already authenticated) sent for a build.

    Returns the accepted row (the same row again for an identical resend), or, for a
    failure of kind ``infrastructure`` on a scheduler-managed build, an ``interrupted``
    row that counts for nothing (the scheduler sends the task again). Raises
    :class:`ResultRefusedError` after storing a refused row with its reason. Computes
    the build's verdict once every builder asked has answered.
    """

    def refuse(reason: str) -> ResultRefusedError:
        return _refuse(session, build_id, builder_id, envelope, reason, now)

    build = session.get(Build, build_id)
    if build is None:
        raise refuse(f"build {build_id[:64]} does not exist")
    builder = session.get(Builder, builder_id)
    if builder is None:
        raise refuse(f"builder {builder_id[:12]} is not enrolled")
    if not builder.approved:
        raise refuse(f"builder {builder_id[:12]} is not approved")
    try:
        result = verify_result(envelope, [public_key_from_dict(builder.public_key)])
    except (SignatureError, SigningKeyError) as exc:
        raise refuse(str(exc)) from None
    problem = _check_answers(result, build, builder_id)
    if problem is not None:
        raise refuse(problem)
    previous = session.exec(
        select(BuildResultRow).where(
            BuildResultRow.build_id == build_id,
            BuildResultRow.builder_id == builder_id,
            BuildResultRow.status == "accepted",
        )
    ).first()
    if previous is not None:
        if previous.envelope.get("payload") == envelope.get("payload"):
            return previous
        raise refuse(f"builder {builder_id[:12]} already sent a different result for this build")
    if build.verdict is not None:
        raise refuse(f"build {build_id} was already decided ({build.status})")
    if build.managed and result.predicate.infrastructure_failure:
        return _record_interrupted(session, build, builder_id, envelope, result, now)
    problem = _check_outputs(session, staging, result)
    if problem is not None:
        raise refuse(problem)
    row = BuildResultRow(
        build_id=build_id,
        builder_id=builder_id,
        received_at=now,
        envelope=envelope,
        status="accepted",
        build_status=result.predicate.status,
    )
    session.add(row)
    session.flush()
    assert row.id is not None
    for output in result.predicate.outputs:
        session.add(
            Output(
                result_id=row.id,
                build_id=build_id,
                builder_id=builder_id,
                name=output.name,
                sha256=output.sha256,
                size=output.size,
            )
        )
    builder.builds_done += 1
    build.status = "running"
    build.updated_at = now
    session.add_all([builder, build])
    session.commit()
    if not build.managed:  # the scheduler decides its own builds (it may replace builders)
        finalize(session, build_id, now)
    return row


def _record_interrupted(
    session: Session,
    build: Build,
    builder_id: str,
    envelope: dict[str, Any],
    result: SignedResult,
    now: datetime,
) -> BuildResultRow:
    """Record a builder's ``infrastructure`` failure of a scheduler-managed build as
    ``interrupted``: not a result of the build (it is not counted, and the builder may
    still send one), but what tells the scheduler to send the task again (ADR 37).
    The same envelope sent again (a delivery retried) is the same row."""
    same = session.exec(
        select(BuildResultRow).where(
            BuildResultRow.build_id == build.id,
            BuildResultRow.builder_id == builder_id,
            BuildResultRow.status == "interrupted",
        )
    ).all()
    for row in same:
        if row.envelope.get("payload") == envelope.get("payload"):
            return row
    row = BuildResultRow(
        build_id=build.id,
        builder_id=builder_id,
        received_at=now,
        envelope=envelope,
        status="interrupted",
        reason=result.predicate.error,
        build_status="failed",
    )
    session.add(row)
    session.commit()
    log.warning(
        "build %s: builder %s reports its host failed the build (infrastructure): %s",
        build.id,
        builder_id[:12],
        result.predicate.error,
    )
    return row


def _accepted(session: Session, build: Build) -> list[SignedResult]:
    rows = session.exec(
        select(BuildResultRow).where(
            BuildResultRow.build_id == build.id, BuildResultRow.status == "accepted"
        )
    )
    results = []
    for row in rows:
        builder = get_builder(session, row.builder_id)
        # Re-verified from the stored bytes: what is decided is what was signed.
        results.append(verify_result(row.envelope, [public_key_from_dict(builder.public_key)]))
    return results


def _across_arches(
    session: Session, build: Build, verdict: Verdict
) -> tuple[Verdict, dict[str, Any]]:
    """``verdict``, disputed if a pure wheel it agreed on differs from the one the latest
    verified build of the same recipe on another architecture agreed on; and the
    comparison to record with it (``{"cross_arch": …}``, ``not_applicable`` when no pure
    wheel was there to compare; nothing when no other architecture has verified).

    The comparison is also recorded on those other builds' verdicts: the build decided
    first stays as decided (it may be attested already); the one decided second is the
    one disputed, in the same transaction as its verdict, so it is never attested.
    """
    if verdict.status != "verified":
        return verdict, {}
    siblings = session.exec(
        select(Build)
        .where(
            Build.recipe_digest == build.recipe_digest,
            Build.arch != build.arch,
            Build.status == "verified",
        )
        .order_by(col(Build.finished_at).desc())
    ).all()
    latest: dict[str, Build] = {}
    for other in siblings:
        latest.setdefault(other.arch, other)
    agreed: dict[str, dict[str, str] | None] = {build.arch: dict(verdict.digests)}
    for arch, other in latest.items():
        agreed[arch] = {
            str(d["name"]): str(d["sha256"]) for d in (other.verdict or {}).get("digests", [])
        }
    cross = compare_arches(agreed)
    if len(cross.arches) < 2:
        return verdict, {}
    # Two architectures verified: recorded even when nothing pure was compared (a
    # compiled recipe's platform wheels, ADR 42), so the verdict says it was considered.
    builds = {build.arch: build.id} | {a: b.id for a, b in latest.items()}
    record: dict[str, Any] = {"cross_arch": {**cross.to_json(), "builds": builds}}
    for other in latest.values():
        other.verdict = {**(other.verdict or {}), **record}
        session.add(other)
    try:
        require_cross_arch(cross)
    except QuorumError as exc:
        log.warning("build %s: %s", build.id, exc)
        return dataclasses.replace(verdict, status="disputed", reason=str(exc)), record
    return verdict, record


def finalize(
    session: Session, build_id: str, now: datetime, *, force: bool = False
) -> Verdict | None:
    """Decide the build once every builder asked has answered (or now, if ``force``).

    Returns the verdict, or None while results are still expected. Stores the verdict
    and status with the build; a build is decided once.
    """
    # Lock the row (PostgreSQL; SQLite serialises writers) so two results arriving
    # together cannot both decide the build and count agreements twice.
    build = session.exec(select(Build).where(Build.id == build_id).with_for_update()).first()
    if build is None:
        raise NotFoundError(f"build {build_id[:64]} does not exist")
    if build.verdict is not None:
        return None
    results = _accepted(session, build)
    answered = {r.predicate.builder_id for r in results}
    if not force and not set(build.builders) <= answered:
        return None
    try:
        recipe = parse_recipe(build.recipe, f"build {build.id}")
    except FarmError as exc:
        raise ConflictError(f"stored recipe of build {build.id} no longer parses: {exc}") from None
    verdict, cross = _across_arches(
        session, build, decide(recipe, results, build.builders, build.arch)
    )
    build.verdict = {**verdict.to_json(), **cross}
    build.status = verdict.status
    build.finished_at = now
    build.updated_at = now
    session.add(build)
    if verdict.status == "verified":
        for builder_id in verdict.agreed:
            builder = get_builder(session, builder_id)
            builder.agreements += 1
            session.add(builder)
    session.commit()
    log.info("build %s decided: %s", build.id, verdict.reason)
    return verdict


def build_public(session: Session, build_id: str) -> BuildPublic:
    """The public view of a build with every result it received."""
    build = get_build(session, build_id)
    rows = session.exec(
        select(BuildResultRow)
        .where(BuildResultRow.build_id == build_id)
        .order_by(col(BuildResultRow.id))
    ).all()
    results = []
    for row in rows:
        assert row.id is not None
        outputs = session.exec(select(Output).where(Output.result_id == row.id)).all()
        log_sha256 = error = None
        if row.status in ("accepted", "interrupted"):  # verified at intake; for display
            predicate = parse_statement(envelope_payload(row.envelope)).predicate
            log_sha256, error = predicate.log_sha256, predicate.error
        results.append(
            BuildResultPublic(
                id=row.id,
                builder_id=row.builder_id,
                received_at=row.received_at,
                status=row.status,
                reason=row.reason,
                build_status=row.build_status,
                outputs=[OutputPublic(name=o.name, sha256=o.sha256, size=o.size) for o in outputs],
                envelope=row.envelope,
                log_sha256=log_sha256,
                error=error,
            )
        )
    attempts = session.exec(
        select(BuildAttempt)
        .where(BuildAttempt.build_id == build_id)
        .order_by(col(BuildAttempt.number), col(BuildAttempt.id))
    ).all()
    return BuildPublic(
        **build.model_dump(),
        results=results,
        attempts=[AttemptPublic.model_validate(a.model_dump()) for a in attempts],
    )


def list_builds(
    session: Session,
    *,
    status: str | None = None,
    name: str | None = None,
    verdict: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> BuildPage:
    """One page of builds, newest first, filtered by status, recipe name, verdict status.

    ``verdict`` filters on decided builds' status (``verified``, ``disputed``, ``failed``).
    """
    query = select(Build)
    count = select(func.count()).select_from(Build)
    for column, value in ((Build.status, status), (Build.name, name), (Build.status, verdict)):
        if value is not None:
            query = query.where(column == value)
            count = count.where(column == value)
    if verdict is not None:
        query = query.where(col(Build.verdict).is_not(None))
        count = count.where(col(Build.verdict).is_not(None))
    total = int(session.exec(count).one())
    rows = session.exec(
        query.order_by(col(Build.created_at).desc(), col(Build.id)).offset(offset).limit(limit)
    ).all()
    items = [
        BuildSummaryPublic(
            **b.model_dump(exclude={"verdict"}),
            verdict_reason=str(b.verdict.get("reason")) if b.verdict else None,
            upstream_matches=b.verdict.get("upstream_matches") if b.verdict else None,
        )
        for b in rows
    ]
    nxt = offset + len(items)
    return BuildPage(items=items, total=total, next_offset=nxt if nxt < total else None)
