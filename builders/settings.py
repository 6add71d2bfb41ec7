"""Settings of one builder host process, from ``FARM_*`` environment variables."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from farm.queue import DEFAULT_VISIBILITY_TIMEOUT

__all__ = ["BuilderSettings"]


class BuilderSettings(BaseSettings):
    """Where a builder keeps its identity and files, and which Redis it serves."""

    model_config = SettingsConfigDict(env_prefix="FARM_", extra="ignore")

    home: Path = Field(
        default=Path.home() / ".farm" / "builder",
        description="The builder's own directory: its key, work area (FARM_HOME).",
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0", description="Celery broker and result backend."
    )
    own_keyspace: bool = Field(
        default=False,
        description="Serve this builder's queue in its own broker keyspace "
        "(farm:b:<builder id>:...), as a coordinator with "
        "FARM_COORDINATOR_BUILDER_KEYSPACES=1 sends it (FARM_OWN_KEYSPACE).",
    )
    visibility_timeout: int = Field(
        default=DEFAULT_VISIBILITY_TIMEOUT,
        ge=5,
        description="Seconds before a task of a dead worker is delivered again; "
        "recipes with a longer timeout are refused.",
    )
    cache_dir: Path | None = Field(
        default=None, description="Fetched sources and dependencies by digest (shareable)."
    )
    store_dir: Path | None = Field(
        default=None, description="Content-addressed store of outputs and logs (shareable)."
    )
    build_margin: int = Field(
        default=120,
        ge=0,
        description="Seconds a build may need beyond its recipe timeout (fetch, collect); "
        "recipe timeout + margin must stay below the visibility timeout.",
    )
    pypi_url: str = Field(default="https://pypi.org", description="PyPI JSON API base URL.")
    heartbeat_interval: float = Field(default=5.0, gt=0, description="Seconds between heartbeats.")
    keep_work: bool = Field(default=False, description="Keep each build's work directory.")
    builder_variation: bool = Field(
        default=True,
        description="Run each build under this builder's own variation of what the recipe "
        "leaves open (hostname, domain name, umask, CPU count, locale; ADR 38) and record "
        "it in the signed result (FARM_BUILDER_VARIATION; off: the fixed environment).",
    )
    coordinator_url: str | None = Field(
        default=None,
        description="Coordinator API URL (FARM_COORDINATOR_URL). When set, every signed "
        "result is also uploaded there (outputs to staging, then the envelope) and "
        "heartbeats are sent to it; unset, results stay in Redis only.",
    )
    delivery_attempts: int = Field(
        default=5, ge=1, le=20, description="Tries per request to the coordinator."
    )
    metrics_address: str = Field(
        default="",
        description="HOST:PORT on which the worker serves GET /healthz, /readyz and "
        "/metrics (FARM_METRICS_ADDRESS); empty: not served.",
    )
    builder_image: str | None = Field(
        default=None,
        description="The pinned builder image ID (sha256:<64 hex>, FARM_BUILDER_IMAGE) "
        "that /readyz requires to be loaded; unset: the builder never reports ready.",
    )

    builder_coordinator_key: Path | None = Field(
        default=None,
        description="The coordinator's public key (FARM_BUILDER_COORDINATOR_KEY): a JSON "
        "public key file such as a cluster's public/coordinator.pub (the genesis "
        "coordinator key). The worker runs only build tasks signed by it (ADR 41) and "
        "refuses to start without it.",
    )

    @field_validator("builder_image")
    @classmethod
    def _image_id(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"sha256:[0-9a-f]{64}", v):
            raise ValueError(f"{v!r} is not an image ID (sha256:<64 lowercase hex>)")
        return v

    @property
    def key_path(self) -> Path:
        """The builder's private key."""
        return self.home / "key.pem"

    @property
    def work_root(self) -> Path:
        """Per-build scratch directories on the host."""
        return self.home / "work"

    @property
    def cache(self) -> Path:
        """Fetch cache."""
        return self.cache_dir or self.home / "cache"

    @property
    def store(self) -> Path:
        """Output store."""
        return self.store_dir or self.home / "store"
