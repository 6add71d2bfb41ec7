"""Builders' independence domains and the operator-signed enroll transactions.

``builder.domain`` is the independence domain the operator assigned at approval (the
scheduler picks builders from distinct domains, ADR 35); ``builder.enroll_tx`` the
enroll transaction the operator signed, which the coordinator relays to the ledger
as it is (ADR 34). Builders approved before this revision have neither: the
scheduler counts each such builder as a domain of its own, and the ledger enrolls it
only once an operator approves it again with a domain.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision: str | None = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``builder.domain`` and ``builder.enroll_tx``."""
    with op.batch_alter_table("builder") as batch:
        batch.add_column(sa.Column("domain", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("enroll_tx", sa.Text(), nullable=True))


def downgrade() -> None:
    """Drop them."""
    with op.batch_alter_table("builder") as batch:
        batch.drop_column("enroll_tx")
        batch.drop_column("domain")
