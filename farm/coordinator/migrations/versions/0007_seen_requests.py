"""Signed builder requests already accepted, shared by coordinator replicas.

``seen_request`` holds (builder id, nonce) with the request's signed timestamp; its
primary key makes the replay check atomic across processes (ADR 0030).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision: str | None = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the ``seen_request`` table."""
    op.create_table(
        "seen_request",
        sa.Column("builder_id", sa.String(length=64), nullable=False),
        sa.Column("nonce", sa.String(length=128), nullable=False),
        sa.Column("timestamp", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("builder_id", "nonce"),
    )
    op.create_index(op.f("ix_seen_request_timestamp"), "seen_request", ["timestamp"])


def downgrade() -> None:
    """Drop it."""
    op.drop_index(op.f("ix_seen_request_timestamp"), table_name="seen_request")
    op.drop_table("seen_request")
