"""Settings of the coordinator process (environment ``FARM_COORDINATOR_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from farm.transactions import CHAIN_ID_PATTERN

__all__ = ["CoordinatorSettings"]


class CoordinatorSettings(BaseSettings):
    """Everything ``farm serve`` needs to know; each option says what it is for."""

    model_config = SettingsConfigDict(env_prefix="FARM_COORDINATOR_", extra="forbid")

    db_url: str = Field(
        default="sqlite:///farm-coordinator.db",
        description="SQLAlchemy URL: sqlite:///PATH or postgresql+psycopg://USER@HOST/DB.",
    )
    staging_dir: Path = Field(
        default=Path("farm-staging"),
        description="Directory of the content-addressed staging store.",
    )
    reports_dir: Path = Field(
        default=Path("farm-reports"), description="Directory of stored diffoscope reports."
    )
    diffoscope_timeout: float = Field(
        default=300.0, gt=0, description="Wall-clock seconds one diffoscope run may take."
    )
    request_window: float = Field(
        default=300.0, gt=0, description="Seconds a signed builder request stays valid."
    )
    builder_keyspaces: bool = Field(
        default=False,
        description="Send each builder's tasks into its own broker keyspace "
        "(farm:b:<builder id>:..., farm.queue.keyspace_of), so that a Redis ACL user "
        "limited to that prefix can serve it; its builders run with FARM_OWN_KEYSPACE=1.",
    )
    heartbeat_within: float = Field(
        default=60.0, gt=0, description="A builder not heard from for this long is not scheduled."
    )
    builder_lost_after: float = Field(
        default=90.0,
        gt=0,
        description="Seconds without a heartbeat after which a builder's unfinished "
        "attempts are given up as lost and replaced (a dead builder host is detected "
        "within this bound, not at the recipe timeout). Keep it several heartbeat "
        "intervals long: a live builder whose heartbeats are late is replaced too.",
    )
    redis_url: str | None = Field(
        default=None,
        description="Celery broker of the builders; set, ``farm serve`` runs the scheduler.",
    )
    schedule_interval: float = Field(
        default=1.0, gt=0, description="Seconds between two passes of the scheduler."
    )
    timeout_margin: float = Field(
        default=120.0,
        ge=0,
        description="Seconds a builder gets beyond the recipe's timeout before it is replaced.",
    )
    max_retries: int = Field(
        default=2, ge=0, le=10, description="Replacement builders one build may ask, at most."
    )
    max_interruptions: int = Field(
        default=3,
        ge=0,
        le=20,
        description="Times one builder's task of a build is sent to it again after its host "
        "failed the build (a signed failure of kind infrastructure: its Docker Engine "
        "stopped or failed) or fell silent with no other builder to replace it; then it "
        "is replaced, or the build decided without it (ADR 37).",
    )
    interruption_pause: float = Field(
        default=10.0,
        ge=0,
        description="Seconds after a builder's host failed a build before its task is "
        "sent to it again: a host going down would fail it again at once (ADR 37).",
    )
    recipes_repo: str | None = Field(
        default=None, description="Git repository of recipes to follow (local path or URL)."
    )
    recipes_branch: str = Field(default="main", description="Branch of the followed repository.")
    recipes_poll: float = Field(
        default=60.0, gt=0, description="Seconds between two polls of the recipe repository."
    )
    recipes_checkout: Path = Field(
        default=Path("farm-recipes"), description="Where the followed repository is cloned."
    )
    webhook_secret: str | None = Field(
        default=None,
        description="Shared secret of POST /v1/hooks/push (HMAC-SHA256, X-Hub-Signature-256).",
    )
    max_upload: int = Field(
        default=512 * 2**20,
        gt=0,
        description="Largest request body (an output upload) accepted, bytes; held in memory.",
    )
    ledger_urls: str | None = Field(
        default=None,
        description="Comma-separated HTTP base URLs of ledger validators; set, verified "
        "builds are attested and approved builders enrolled on the ledger.",
    )
    coordinator_key: Path | None = Field(
        default=None,
        description="The coordinator's signing key (its public key is in the ledger genesis): "
        "it signs attestations and every build task (ADR 41); required with redis_url.",
    )
    ledger_chain: str | None = Field(
        default=None,
        pattern=CHAIN_ID_PATTERN,
        description="Chain id of the ledger (its genesis chain_id): operator transactions "
        "(enroll, retire, revoke), signed by the operator where they work, are relayed only "
        "when signed for this chain by an operator of the genesis.",
    )
    genesis: Path | None = Field(
        default=None,
        description="The ledger's genesis file: a validator's receipt counts only under a "
        "checkpoint 2f+1 of its validators co-signed (required with ledger_urls).",
    )
    ledger_interval: float = Field(
        default=1.0, gt=0, description="Seconds between two passes of the ledger publisher."
    )
