"""Settings of ``farm pull`` / ``farm verify``: command-line options over ``FARM_*``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEFAULT_MAX_AGE", "ConsumerSettings"]

DEFAULT_MAX_AGE = 86400.0


class ConsumerSettings(BaseSettings):
    """Where the trust root, the node and the memory are (options win over environment)."""

    model_config = SettingsConfigDict(env_prefix="FARM_", frozen=True, extra="ignore")

    genesis: Path | None = Field(
        default=None, description="FARM_GENESIS: the pinned genesis file, the trust root."
    )
    dist_url: str | None = Field(
        default=None, description="FARM_DIST_URL: base URL of the distribution node."
    )
    state_dir: Path | None = Field(
        default=None, description="FARM_STATE_DIR: where the largest verified tree is kept."
    )
    max_age: float = Field(
        default=DEFAULT_MAX_AGE,
        gt=0,
        description="FARM_MAX_AGE: oldest checkpoint accepted, in seconds (freeze defence).",
    )
