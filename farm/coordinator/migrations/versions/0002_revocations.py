"""Revocations: revoke transactions the coordinator signed, and the ledger's answer.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the ``revocation`` table."""
    op.create_table(
        "revocation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=2000), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("tx", sa.Text(), nullable=False),
        sa.Column("tx_id", sa.String(length=64), nullable=False),
        sa.Column("requested_by", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("ledger_index", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("tree_size", sa.Integer(), nullable=True),
        sa.Column("inclusion_proof", sa.JSON(), nullable=False),
        sa.Column("checkpoint", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tx_id"),
    )
    op.create_index(op.f("ix_revocation_sha256"), "revocation", ["sha256"], unique=False)
    op.create_index(op.f("ix_revocation_status"), "revocation", ["status"], unique=False)


def downgrade() -> None:
    """Drop it."""
    op.drop_index(op.f("ix_revocation_status"), table_name="revocation")
    op.drop_index(op.f("ix_revocation_sha256"), table_name="revocation")
    op.drop_table("revocation")
