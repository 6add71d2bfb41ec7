"""How many times an attempt's task was sent again to the same builder (ADR 0037).

``build_attempt.interruptions`` counts the resends after the builder's host failed the
build (an ``infrastructure`` failure) or fell silent with no spare builder; it bounds
them. Existing attempts start at 0.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision: str | None = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``build_attempt.interruptions``."""
    op.add_column(
        "build_attempt",
        sa.Column("interruptions", sa.Integer(), server_default="0", nullable=False),
    )


def downgrade() -> None:
    """Drop it."""
    with op.batch_alter_table("build_attempt") as batch:
        batch.drop_column("interruptions")
