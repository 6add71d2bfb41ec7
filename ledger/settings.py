"""Settings of one validator process (``farm ledger run``).

Every option can be given in the environment as ``FARM_LEDGER_<NAME>`` (for example
``FARM_LEDGER_TIMEOUT_PROPOSE=2``); the command line overrides the directory and the
genesis file. Times are in seconds.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ledger.consensus import TimeoutConfig
from ledger.network import split_hostport

__all__ = ["KEY_FILE", "NodeSettings"]

KEY_FILE = "validator.key"
"""The validator's Ed25519 key inside its directory (PKCS#8 PEM, mode 0600)."""


class NodeSettings(BaseSettings):
    """How one validator runs."""

    model_config = SettingsConfigDict(env_prefix="FARM_LEDGER_", extra="forbid")

    dir: Path = Field(description="The validator's directory: key, store, vote guard.")
    genesis: Path = Field(description="The genesis file naming chain id and validators.")
    name: str | None = Field(
        default=None, description="This validator's name in genesis (default: from its key)."
    )

    timeout_propose: float = Field(1.0, gt=0, description="timeoutPropose of round 0.")
    timeout_prevote: float = Field(0.5, gt=0, description="timeoutPrevote of round 0.")
    timeout_precommit: float = Field(0.5, gt=0, description="timeoutPrecommit of round 0.")
    timeout_delta: float = Field(0.5, ge=0, description="Added to every timeout per round.")

    batch_wait: float = Field(
        0.0,
        ge=0,
        description=(
            "When idle and a first transaction arrives, wait this long before starting "
            "the height so that more can join the block (0: start at once)."
        ),
    )
    max_block_txs: int = Field(2_000, gt=0, description="Most transactions in one block.")
    max_block_bytes: int = Field(
        8 * 1024 * 1024, gt=0, description="Most transaction bytes in one block."
    )
    max_mempool_txs: int = Field(50_000, gt=0, description="Most pending transactions.")
    max_tx_bytes: int = Field(1024 * 1024, gt=0, description="Largest transaction accepted.")
    commit_wait: float = Field(
        30.0, gt=0, description="How long POST /v1/tx waits for the commit before 504."
    )
    checkpoint_wait: float = Field(
        2.0, ge=0, description="How long POST /v1/tx then waits for a co-signed checkpoint."
    )
    status_interval: float = Field(
        1.0, gt=0, description="How often a validator tells its peers its height."
    )
    sync_after: float = Field(
        1.0,
        ge=0,
        description="Fetch blocks when a peer is ahead and we made no progress for this long.",
    )
    cosign_interval: float = Field(
        5.0,
        gt=0,
        description=(
            "Re-cosign the latest checkpoint with the current time when nothing was "
            "co-signed for this long, so an idle ledger's checkpoint stays fresh for "
            "clients that refuse old ones (C2SP cosignature/v1 timestamps)."
        ),
    )
    reconnect_max: float = Field(2.0, gt=0, description="Longest pause between dial attempts.")
    peer_timeout: float = Field(
        10.0,
        gt=0,
        description=(
            "A peer link that carried no frame for this long (peers send their status "
            "every status_interval), or whose frames stay unacknowledged this long, is "
            "closed and dialled again (ADR 0033). Must exceed status_interval."
        ),
    )
    listen_host: str | None = Field(
        default=None,
        description=(
            "Address to accept peers and HTTP on, with the genesis ports (default: the "
            "host of this validator's genesis addresses). '0.0.0.0' on a host whose "
            "address can change, e.g. a container taken off its network and put back."
        ),
    )

    @model_validator(mode="after")
    def _peer_timeout_outlasts_status(self) -> NodeSettings:
        """A healthy but quiet link carries a status frame every status_interval: a
        shorter peer_timeout would close it."""
        if self.peer_timeout <= 2 * self.status_interval:
            raise ValueError(
                f"peer_timeout ({self.peer_timeout:g} s) must exceed twice "
                f"status_interval ({self.status_interval:g} s)"
            )
        return self

    def listen(self, address: str) -> tuple[str, int]:
        """Where to listen for the genesis ``address`` (``host:port``)."""
        host, port = split_hostport(address)
        return (self.listen_host or host, port)

    @property
    def key_path(self) -> Path:
        """The validator's key file."""
        return self.dir / KEY_FILE

    @property
    def store_path(self) -> Path:
        """The ledger store (SQLite, WAL)."""
        return self.dir / "ledger.sqlite"

    @property
    def guard_path(self) -> Path:
        """The vote guard (SQLite, fsynced per vote)."""
        return self.dir / "votes.sqlite"

    def timeouts(self) -> TimeoutConfig:
        """The consensus timeout schedule."""
        d = self.timeout_delta
        return TimeoutConfig(
            propose_base=self.timeout_propose,
            propose_delta=d,
            prevote_base=self.timeout_prevote,
            prevote_delta=d,
            precommit_base=self.timeout_precommit,
            precommit_delta=d,
        )
