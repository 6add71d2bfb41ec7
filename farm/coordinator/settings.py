"""Settings of the coordinator process (environment ``FARM_COORDINATOR_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    heartbeat_within: float = Field(
        default=60.0, gt=0, description="A builder not heard from for this long is not scheduled."
    )
    max_upload: int = Field(
        default=512 * 2**20,
        gt=0,
        description="Largest request body (an output upload) accepted, bytes; held in memory.",
    )
