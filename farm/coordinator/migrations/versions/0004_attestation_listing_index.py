"""An index that serves attestation lists newest first without sorting the table.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``ix_attestation_listing`` (status, submitted_at DESC, tx_id)."""
    op.create_index(
        "ix_attestation_listing",
        "attestation",
        ["status", sa.text("submitted_at DESC"), "tx_id"],
        unique=False,
    )


def downgrade() -> None:
    """Drop it."""
    op.drop_index("ix_attestation_listing", table_name="attestation")
