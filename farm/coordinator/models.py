"""The coordinator's storage and wire schemas (SQLModel).

Each thing follows the ``XBase / XCreate / X(table=True) / XPublic`` family: ``XBase``
holds the fields everybody may see and send, ``XCreate`` what a client sends to make
one, ``X`` the table row, ``XPublic`` what the API returns. Routes return ``XPublic``
models, never rows. Secrets (enrollment and operator tokens) are stored only as their
sha256; no public model has a field that holds one.

Portable between SQLite and PostgreSQL: JSON columns, timestamps stored as naive UTC
and read back as aware UTC (:class:`UTCDateTime`), string primary keys sized for ids.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from pydantic import Field as PField
from sqlalchemy import JSON, DateTime, Index, Text, UniqueConstraint, text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from farm.transactions import DOMAIN_PATTERN

__all__ = [
    "ArtifactPublic",
    "AttemptPublic",
    "Attestation",
    "AttestationArtifact",
    "AttestationPage",
    "AttestationPublic",
    "Build",
    "BuildAttempt",
    "BuildCreate",
    "BuildPage",
    "BuildPublic",
    "BuildResultPublic",
    "BuildResultRow",
    "BuildStatus",
    "BuildSummaryPublic",
    "Builder",
    "BuilderApproval",
    "BuilderBase",
    "BuilderCreate",
    "BuilderPublic",
    "BuilderRetirement",
    "ConsistencyProofPublic",
    "DiffReport",
    "DiffReportPublic",
    "EnrollmentToken",
    "EnrollmentTokenCreate",
    "EnrollmentTokenPublic",
    "InclusionProofPublic",
    "LedgerCheckpointPublic",
    "LedgerStatus",
    "LedgerStatusPublic",
    "OperatorToken",
    "Output",
    "OutputPublic",
    "RecipeBranch",
    "RecipeBranchPublic",
    "RecipeEntry",
    "RecipePublic",
    "ResultStatus",
    "Revocation",
    "RevocationCreate",
    "RevocationPage",
    "RevocationPublic",
    "RevokedPublic",
    "SeenRequest",
    "StagingBlob",
    "utcnow",
]

BuildStatus = Literal["pending", "running", "verified", "disputed", "failed"]
ResultStatus = Literal["accepted", "refused", "interrupted"]
"""``interrupted``: a builder's signed failure of kind ``infrastructure`` (its own host
failed, not the build) on a scheduler-managed build; not counted, its task sent again."""
LedgerStatus = Literal["committed", "rejected"]
RevocationStatus = Literal["pending", "committed", "rejected"]


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite forgets the zone; we put it back)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the coordinator's storage")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


# ---- builders ---------------------------------------------------------------------------


class BuilderBase(SQLModel):
    """What a builder says about itself when it enrolls."""

    hostname: str = Field(min_length=1, max_length=255)
    arches: list[str] = Field(default_factory=list, sa_type=JSON, min_length=1)


class BuilderCreate(BuilderBase):
    """An enrollment request: the one-time token and the builder's public key."""

    token: str = Field(min_length=16, max_length=256)
    public_key: dict[str, Any]


class Builder(BuilderBase, table=True):
    """An enrolled builder; its id is its key's id."""

    id: str = Field(primary_key=True, max_length=64)
    public_key: dict[str, Any] = Field(sa_type=JSON)
    enrolled_at: datetime = Field(sa_type=UTCDateTime)
    approved: bool = False
    approved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_seen: datetime | None = Field(default=None, sa_type=UTCDateTime)
    builds_done: int = 0
    agreements: int = 0
    ledger_index: int | None = None
    """Log index of this builder's committed enroll transaction."""
    ledger_tx_id: str | None = Field(default=None, max_length=64)
    ledger_error: str | None = None
    """Why the ledger refused the enroll transaction, if it did."""
    domain: str | None = Field(default=None, max_length=128)
    """Independence domain the operator assigned at approval (None: not yet approved
    with one; the scheduler then counts the builder as a domain of its own)."""
    enroll_tx: str | None = Field(default=None, sa_type=Text)
    """The enroll transaction the operator signed (canonical JSON), relayed as it is."""


class BuilderApproval(BaseModel):
    """An operator's approval of an enrolled builder: its independence domain and, on a
    coordinator with a ledger, the enroll transaction the operator signed for it
    (``farm operator approve`` makes it; the coordinator holds no operator key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    domain: str = PField(
        pattern=DOMAIN_PATTERN,
        description="The organisation or site that controls the builder; the scheduler "
        "and the ledger need quorum distinct domains among agreeing builders.",
    )
    enroll_tx: str | None = PField(
        default=None,
        max_length=1 << 16,
        description="The operator-signed enroll transaction (canonical JSON); required "
        "when the coordinator has a ledger, and its domain must be ``domain``.",
    )


class BuilderRetirement(BaseModel):
    """An operator's retirement of a builder: on a coordinator with a ledger, the retire
    transaction the operator signed (``farm operator retire`` makes it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str = PField(default="retired by the operator", min_length=1, max_length=2000)
    retire_tx: str | None = PField(
        default=None,
        max_length=1 << 16,
        description="The operator-signed retire transaction (canonical JSON); required "
        "when the builder is enrolled on the ledger.",
    )


class BuilderPublic(BuilderBase):
    """A builder as the API shows it."""

    id: str
    public_key: dict[str, Any]
    enrolled_at: datetime
    approved: bool
    approved_at: datetime | None
    last_seen: datetime | None
    builds_done: int
    agreements: int
    agreement_rate: float | None = None
    """Share of this builder's finished builds whose verdict it agreed with."""
    ledger_index: int | None = None
    ledger_tx_id: str | None = None
    ledger_error: str | None = None
    domain: str | None = None


# ---- tokens -------------------------------------------------------------------------------


class EnrollmentTokenCreate(SQLModel):
    """An operator's request for a new enrollment token."""

    ttl_seconds: int = Field(default=3600, ge=60, le=30 * 86400)
    note: str = Field(default="", max_length=255)


class EnrollmentToken(SQLModel, table=True):
    """A one-time enrollment token, stored as its sha256 only."""

    id: int | None = Field(default=None, primary_key=True)
    token_sha256: str = Field(max_length=64, unique=True, index=True)
    note: str = Field(default="", max_length=255)
    created_at: datetime = Field(sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    used_by: str | None = Field(default=None, max_length=64)


class EnrollmentTokenPublic(SQLModel):
    """A freshly issued token: the only time its secret is shown."""

    id: int
    token: str
    expires_at: datetime
    note: str


class OperatorToken(SQLModel, table=True):
    """An operator's bearer token, stored as its sha256 only."""

    id: int | None = Field(default=None, primary_key=True)
    token_sha256: str = Field(max_length=64, unique=True, index=True)
    name: str = Field(default="operator", max_length=255)
    created_at: datetime = Field(sa_type=UTCDateTime)
    revoked: bool = False


class SeenRequest(SQLModel, table=True):
    """A signed builder request already accepted: (builder, nonce) and its signed time.

    The primary key makes acceptance atomic across coordinator replicas on one
    database: of two inserts of one pair, exactly one succeeds
    (:mod:`farm.coordinator.replay`). Rows older than the accepted clock skew are pruned.
    """

    __tablename__ = "seen_request"

    builder_id: str = Field(max_length=64, primary_key=True)
    nonce: str = Field(max_length=128, primary_key=True)
    timestamp: int = Field(index=True)
    """The request's X-Farm-Timestamp (Unix seconds)."""


# ---- builds, results, outputs -------------------------------------------------------------


class Build(SQLModel, table=True):
    """One build of one recipe on one architecture, by the builders asked."""

    id: str = Field(primary_key=True, max_length=64)
    recipe_digest: str = Field(max_length=71, index=True)
    recipe: dict[str, Any] = Field(sa_type=JSON)
    name: str = Field(max_length=255, index=True)
    version: str = Field(max_length=255)
    arch: str = Field(max_length=32)
    quorum: int
    builders: list[str] = Field(default_factory=list, sa_type=JSON)
    status: str = Field(default="pending", max_length=16, index=True)
    verdict: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    retries: int = 0
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    origin: str = Field(default="api", max_length=255)
    """Who asked: ``api`` (an operator) or ``repo:<path>@<commit>`` (the recipe follower)."""
    commit: str | None = Field(default=None, max_length=64)
    """The followed repository's commit that brought the recipe (recipe follower builds)."""
    note: str | None = None
    """Why the scheduler is waiting (e.g. too few healthy builders), if it is."""
    managed: bool = False
    """Run by the scheduler: it, not an arriving result, decides when to finalize."""


class BuildCreate(SQLModel):
    """An operator's request to build a recipe (YAML text or its canonical JSON)."""

    recipe: str | dict[str, Any]
    arches: list[str] | None = Field(default=None, min_length=1)


AttemptState = Literal[
    "dispatched", "succeeded", "failed", "timed_out", "refused", "lost", "interrupted"
]


class BuildAttempt(SQLModel, table=True):
    """One builder asked to take part in one build: dispatched, then how it ended."""

    __tablename__ = "build_attempt"
    __table_args__ = (UniqueConstraint("build_id", "builder_id"),)

    id: int | None = Field(default=None, primary_key=True)
    build_id: str = Field(max_length=64, index=True)
    builder_id: str = Field(max_length=64)
    number: int
    """1 for the first builders asked; higher for replacements."""
    state: str = Field(default="dispatched", max_length=16)
    dispatched_at: datetime = Field(sa_type=UTCDateTime)
    deadline: datetime = Field(sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    reason: str | None = None
    replaced_by: str | None = Field(default=None, max_length=64)
    interruptions: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    """How many times this attempt's task was sent again to the same builder after its
    host failed it (``interrupted``) or fell silent with no spare to replace it (ADR 37)."""


class AttemptPublic(SQLModel):
    """One builder's part in a build, as the API shows it."""

    builder_id: str
    number: int
    state: str
    dispatched_at: datetime
    deadline: datetime
    finished_at: datetime | None
    reason: str | None
    replaced_by: str | None
    interruptions: int = 0


class RecipeEntry(SQLModel, table=True):
    """A recipe file seen on the followed repository's main branch."""

    __tablename__ = "recipe_entry"

    path: str = Field(primary_key=True, max_length=1024)
    commit: str = Field(max_length=64)
    name: str | None = Field(default=None, max_length=255, index=True)
    version: str | None = Field(default=None, max_length=255)
    digest: str | None = Field(default=None, max_length=71, index=True)
    status: str = Field(max_length=16)
    """``scheduled`` (a build exists for its digest), ``lint_failed``, or
    ``refused_changed``: the file changes an attested name and version in place (a new
    version needs a new file); ``problems`` says which build it would have overridden."""
    problems: list[str] = Field(default_factory=list, sa_type=JSON)
    seen_at: datetime = Field(sa_type=UTCDateTime)


class RecipePublic(SQLModel):
    """A followed recipe with its digest, status and the verdict of its latest build."""

    path: str
    commit: str
    name: str | None
    version: str | None
    digest: str | None
    status: str
    problems: list[str]
    seen_at: datetime
    last_build_id: str | None
    last_verdict: str | None


class RecipeBranch(SQLModel, table=True):
    """The followed branch of a recipe repository: its tip and the rewrites seen.

    A rewrite (force push) is a new tip that does not descend from the last tip seen;
    it is recorded here and logged, and nothing built or attested is touched.
    """

    __tablename__ = "recipe_branch"
    __table_args__ = (UniqueConstraint("source", "branch"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=1024)
    branch: str = Field(max_length=255)
    tip: str = Field(max_length=64)
    """The branch's commit at the last poll."""
    polled_at: datetime = Field(sa_type=UTCDateTime)
    rewrites: int = 0
    """How many times the branch was seen rewritten."""
    rewritten_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    rewritten_from: str | None = Field(default=None, max_length=64)
    """The tip seen before the latest rewrite (no longer an ancestor of the branch)."""
    rewritten_to: str | None = Field(default=None, max_length=64)


class RecipeBranchPublic(SQLModel):
    """The followed branch as the API shows it."""

    source: str
    branch: str
    tip: str
    polled_at: datetime
    rewrites: int
    rewritten_at: datetime | None
    rewritten_from: str | None
    rewritten_to: str | None


class BuildResultRow(SQLModel, table=True):
    """A result a builder sent for a build: accepted, or refused with the reason."""

    __tablename__ = "build_result"

    id: int | None = Field(default=None, primary_key=True)
    build_id: str = Field(max_length=64, index=True)
    builder_id: str = Field(max_length=64, index=True)
    received_at: datetime = Field(sa_type=UTCDateTime)
    envelope: dict[str, Any] = Field(sa_type=JSON)
    status: str = Field(max_length=16)
    reason: str | None = None
    build_status: str | None = Field(default=None, max_length=16)
    """The builder's own account: ``succeeded`` or ``failed`` (accepted results only)."""


class Output(SQLModel, table=True):
    """An output an accepted result names, checked against the staged bytes."""

    __table_args__ = (UniqueConstraint("result_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    result_id: int = Field(foreign_key="build_result.id", index=True)
    build_id: str = Field(max_length=64, index=True)
    builder_id: str = Field(max_length=64)
    name: str = Field(max_length=1024)
    sha256: str = Field(max_length=64, index=True)
    size: int


class StagingBlob(SQLModel, table=True):
    """A blob uploaded to the content-addressed staging store."""

    __tablename__ = "staging_blob"

    sha256: str = Field(primary_key=True, max_length=64)
    size: int
    uploaded_by: str = Field(max_length=64)
    uploaded_at: datetime = Field(sa_type=UTCDateTime)


class DiffReportBase(SQLModel):
    """A diffoscope comparison of two digests of one output of a build."""

    build_id: str = Field(max_length=64, index=True)
    output: str = Field(max_length=1024)
    sha256_a: str = Field(max_length=64)
    sha256_b: str = Field(max_length=64)
    status: str = Field(max_length=16)
    """``done`` (reports stored), or ``error`` (``error`` says why)."""
    error: str | None = None
    created_at: datetime = Field(sa_type=UTCDateTime)
    against: str = Field(
        default="builders", max_length=16, sa_column_kwargs={"server_default": "builders"}
    )
    """``builders``: two digests builders produced; ``upstream``: ``sha256_a`` is the
    artifact upstream published (the recipe's reference), ``sha256_b`` the agreed rebuild."""


class DiffReport(DiffReportBase, table=True):
    """A stored diffoscope report (its files live under the coordinator's reports dir)."""

    __tablename__ = "diff_report"

    id: int | None = Field(default=None, primary_key=True)
    html_path: str | None = None
    json_path: str | None = None


class DiffReportPublic(DiffReportBase):
    """A diffoscope report as the API lists it (the files are served by id)."""

    id: int


class OutputPublic(SQLModel):
    """One output of one builder's result."""

    name: str
    sha256: str
    size: int


class BuildResultPublic(SQLModel):
    """A builder's result as the API shows it (the envelope is public: it is signed data)."""

    id: int
    builder_id: str
    received_at: datetime
    status: str
    reason: str | None
    build_status: str | None
    outputs: list[OutputPublic]
    envelope: dict[str, Any]
    log_sha256: str | None = None
    """The digest of the build log the builder signed (accepted results)."""
    error: str | None = None
    """The builder's own account of a failed build (accepted results)."""


class BuildPublic(SQLModel):
    """A build as the API shows it, with every result received and the verdict."""

    id: str
    recipe_digest: str
    name: str
    version: str
    arch: str
    quorum: int
    builders: list[str]
    status: str
    verdict: dict[str, Any] | None
    retries: int
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    origin: str
    commit: str | None = None
    """The followed repository's commit that brought the recipe, if the follower asked."""
    note: str | None
    results: list[BuildResultPublic]
    attempts: list[AttemptPublic] = []


class BuildSummaryPublic(SQLModel):
    """A build as a list shows it (no results)."""

    id: str
    recipe_digest: str
    name: str
    version: str
    arch: str
    quorum: int
    builders: list[str]
    status: str
    verdict_reason: str | None
    upstream_matches: bool | None = None
    """The verdict's comparison with upstream: None without a reference or a verdict."""
    retries: int
    origin: str
    commit: str | None = None
    """The followed repository's commit that brought the recipe, if the follower asked."""
    note: str | None
    created_at: datetime
    finished_at: datetime | None


class BuildPage(SQLModel):
    """One page of builds, newest first; ``next_offset`` is None on the last page."""

    items: list[BuildSummaryPublic]
    total: int
    next_offset: int | None


# ---- the ledger ----------------------------------------------------------------------------


#: The equality filters of attestation lists, each with its own listing index.
LISTING_FILTERS: dict[str, tuple[str, ...]] = {
    "name": ("name",),
    "name_version": ("name", "version"),
    "arch": ("arch",),
    "recipe": ("recipe_digest",),
}


class Attestation(SQLModel, table=True):
    """The attest transaction of one verified build, as the ledger answered it.

    ``committed``: ``ledger_index`` .. ``checkpoint`` are the validator's receipt;
    ``rejected``: ``reason`` is what the ledger said, and nothing is retried.
    """

    # Lists are newest first: a page is read in index order, never sorted whole. Each
    # filter has an index that leads with it and then gives that order, so a query by
    # name reads that name's rows and no others (SQLite would otherwise walk the listing
    # index over the whole table, testing each row).
    __table_args__ = (
        Index("ix_attestation_listing", "status", text("submitted_at DESC"), "tx_id"),
        *(
            Index(
                f"ix_attestation_{label}_listing",
                *columns,
                "status",
                text("submitted_at DESC"),
                "tx_id",
            )
            for label, columns in LISTING_FILTERS.items()
        ),
    )

    tx_id: str = Field(primary_key=True, max_length=64)
    build_id: str = Field(max_length=64, unique=True, index=True)
    status: str = Field(max_length=16, index=True)
    reason: str | None = None
    name: str = Field(max_length=255)
    version: str = Field(max_length=255, index=True)
    arch: str = Field(max_length=32)
    recipe_digest: str = Field(max_length=71)
    bundle: dict[str, Any] = Field(sa_type=JSON)
    ledger_index: int | None = Field(default=None, index=True)
    height: int | None = None
    tree_size: int | None = None
    inclusion_proof: list[str] = Field(default_factory=list, sa_type=JSON)
    checkpoint: str | None = None
    submitted_at: datetime = Field(sa_type=UTCDateTime)


class AttestationArtifact(SQLModel, table=True):
    """One attested output (for queries by artifact sha256)."""

    __table_args__ = (UniqueConstraint("tx_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    tx_id: str = Field(max_length=64, index=True, foreign_key="attestation.tx_id")
    name: str = Field(max_length=1024)
    sha256: str = Field(max_length=64, index=True)


class RevokedPublic(SQLModel):
    """Why and where an attested artifact was revoked (a committed revoke transaction)."""

    revocation_id: int
    reason: str
    ledger_index: int | None


class ArtifactPublic(SQLModel):
    """One attested output: its name and sha256 (hex), and its revocation if revoked."""

    name: str
    sha256: str
    revoked: RevokedPublic | None = None


class AttestationPublic(SQLModel):
    """A committed attestation with what a client needs to check it against the ledger."""

    tx_id: str
    build_id: str
    name: str
    version: str
    arch: str
    recipe_digest: str
    artifacts: list[ArtifactPublic]
    bundle: dict[str, Any]
    ledger_index: int | None
    height: int | None
    tree_size: int | None
    inclusion_proof: list[str]
    checkpoint: str | None
    status: str
    reason: str | None
    submitted_at: datetime
    revoked: bool = False
    """Whether any of its artifacts is revoked on the ledger (see each artifact)."""
    builders: list[str] = []
    """Key ids of the builders whose signed results the bundle rests on."""


class AttestationPage(SQLModel):
    """One page of attestations, newest first; ``next_offset`` is None on the last page."""

    items: list[AttestationPublic]
    total: int
    next_offset: int | None


# ---- revocations --------------------------------------------------------------------------


class RevocationCreate(BaseModel):
    """An operator's revocation of an attested artifact: the revoke transaction the
    operator signed (``farm revoke --key`` makes it); the coordinator relays it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tx: str = PField(
        min_length=2,
        max_length=1 << 16,
        description="The operator-signed revoke transaction (canonical JSON).",
    )


class Revocation(SQLModel, table=True):
    """A revoke transaction an operator signed, relayed by the coordinator.

    ``pending`` until a validator answers; then ``committed`` (``ledger_index`` ..
    ``checkpoint`` are the receipt) or ``rejected`` (``error`` is the ledger's reason).
    """

    id: int | None = Field(default=None, primary_key=True)
    sha256: str = Field(max_length=64, index=True)
    reason: str = Field(max_length=2000)
    status: str = Field(default="pending", max_length=16, index=True)
    error: str | None = None
    tx: str = Field(sa_type=Text)
    """The transaction's wire bytes (canonical JSON, UTF-8), submitted as they are."""
    tx_id: str = Field(max_length=64, unique=True)
    requested_by: str = Field(max_length=255)
    """The name of the operator token that asked."""
    created_at: datetime = Field(sa_type=UTCDateTime)
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    ledger_index: int | None = None
    height: int | None = None
    tree_size: int | None = None
    inclusion_proof: list[str] = Field(default_factory=list, sa_type=JSON)
    checkpoint: str | None = Field(default=None, sa_type=Text)


class RevocationPublic(SQLModel):
    """A revocation as the API shows it (the transaction is signed public data)."""

    id: int
    sha256: str
    reason: str
    status: str
    error: str | None
    tx_id: str
    requested_by: str
    created_at: datetime
    decided_at: datetime | None
    ledger_index: int | None
    height: int | None
    tree_size: int | None
    inclusion_proof: list[str]
    checkpoint: str | None


class RevocationPage(SQLModel):
    """One page of revocations, newest first; ``next_offset`` is None on the last page."""

    items: list[RevocationPublic]
    total: int
    next_offset: int | None


# ---- the ledger's own reads, relayed -------------------------------------------------------


class _LedgerAnswer(BaseModel):
    """A validator's answer, relayed as it is (extra fields it may add are dropped)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class LedgerCheckpointPublic(_LedgerAnswer):
    """The latest co-signed checkpoint: a C2SP signed note over (tree size, root hash).

    A client trusts it once 2f+1 signatures of validators it knows verify.
    """

    size: int = PField(ge=0, description="Tree size the checkpoint commits to.")
    note: str = PField(description="The signed note, validators' signatures included.")


class InclusionProofPublic(_LedgerAnswer):
    """RFC 6962 inclusion proof of log entry ``index`` in the tree of ``size`` entries."""

    index: int = PField(ge=0)
    size: int = PField(ge=1)
    leaf_hash: str = PField(description="Hex RFC 6962 leaf hash of the entry.")
    root: str = PField(description="Hex root hash of the tree of ``size`` entries.")
    proof: list[str] = PField(description="Hex audit path, leaf to root.")


class ConsistencyProofPublic(_LedgerAnswer):
    """RFC 6962 consistency proof between the trees of ``old`` and ``new`` entries."""

    old: int = PField(ge=0)
    new: int = PField(ge=0)
    proof: list[str] = PField(description="Hex hashes of the proof.")


class LedgerStatusPublic(_LedgerAnswer):
    """Where the ledger is, as one validator sees it."""

    chain_id: str | None = None
    height: int = PField(ge=0, description="Committed blocks.")
    size: int = PField(ge=0, description="Entries in the Merkle log.")
    root: str | None = PField(default=None, description="Hex root hash of the log.")
    checkpoint_size: int | None = PField(
        default=None, description="Tree size of the latest co-signed checkpoint."
    )
