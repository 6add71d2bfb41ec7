"""Settings of one distribution node (``farm dist serve``), from options or ``FARM_DIST_*``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from farm.consumer.settings import DEFAULT_MAX_AGE

__all__ = ["DistSettings"]


class DistSettings(BaseSettings):
    """Everything a distribution node needs to know; nothing here is trusted but genesis."""

    model_config = SettingsConfigDict(env_prefix="FARM_DIST_", frozen=True, extra="forbid")

    genesis: Path = Field(description="The chain's genesis file: the only thing trusted.")
    ledger_urls: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Validators' HTTP base URLs to follow (comma-separated in the "
        "environment); empty: the genesis http addresses.",
    )
    coordinator_url: str = Field(description="The coordinator whose staging store holds blobs.")
    data_dir: Path = Field(description="Where the replicated ledger and the blobs are kept.")
    host: str = Field(default="127.0.0.1", description="Address to serve HTTP on.")
    port: int = Field(default=8700, ge=0, le=65535, description="Port to serve HTTP on.")
    poll_interval: float = Field(
        default=1.0, gt=0, description="Seconds between polls of the validators when idle."
    )
    fetch_timeout: float = Field(default=10.0, gt=0, description="Seconds per HTTP request.")
    mirror_retry_max: float = Field(
        default=30.0, gt=0, description="Longest back-off, in seconds, between blob retries."
    )
    max_age: float = Field(
        default=DEFAULT_MAX_AGE,
        gt=0,
        description="Oldest checkpoint (seconds since 2f+1 validators vouched for it) with "
        "which the node still reports ready (GET /readyz); the consumer's default --max-age.",
    )

    tls_cert: Path | None = Field(
        default=None, description="Serve HTTPS with this PEM certificate (with tls_key)."
    )
    tls_key: Path | None = Field(default=None, description="The private key of tls_cert.")

    @field_validator("ledger_urls", mode="before")
    @classmethod
    def _split(cls, v: object) -> object:
        if isinstance(v, str):
            return tuple(u.strip() for u in v.split(",") if u.strip())
        return v

    @field_validator("ledger_urls")
    @classmethod
    def _urls(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for url in v:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{url!r} is not an http(s) URL")
        return tuple(u.rstrip("/") for u in v)

    @field_validator("coordinator_url")
    @classmethod
    def _coordinator(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"{v!r} is not an http(s) URL")
        return v.rstrip("/")

    @property
    def ledger_dir(self) -> Path:
        """The replicated ledger (a :class:`ledger.storage.LedgerStore`)."""
        return self.data_dir / "ledger.sqlite"

    @property
    def blob_dir(self) -> Path:
        """Mirrored blobs, content-addressed."""
        return self.data_dir / "blobs"
