"""Diffoscope reports against upstream: ``diff_report.against`` (``builders``/``upstream``).

Existing reports compared two builders' outputs, so they get ``builders``.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``diff_report.against``."""
    op.add_column(
        "diff_report",
        sa.Column("against", sa.String(length=16), server_default="builders", nullable=False),
    )


def downgrade() -> None:
    """Drop it."""
    with op.batch_alter_table("diff_report") as batch:
        batch.drop_column("against")
