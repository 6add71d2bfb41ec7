"""What a recipe pull request may not do to history: ``build.commit`` and ``recipe_branch``.

``build.commit`` is the followed repository's commit that brought a recipe (existing
builds have none); ``recipe_branch`` keeps the followed branch's tip and the rewrites
(force pushes) seen. A recipe entry may now be ``refused_changed`` (a string column:
no schema change).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``build.commit`` and the ``recipe_branch`` table."""
    op.add_column("build", sa.Column("commit", sa.String(length=64), nullable=True))
    op.create_table(
        "recipe_branch",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=1024), nullable=False),
        sa.Column("branch", sa.String(length=255), nullable=False),
        sa.Column("tip", sa.String(length=64), nullable=False),
        sa.Column("polled_at", sa.DateTime(), nullable=False),
        sa.Column("rewrites", sa.Integer(), nullable=False),
        sa.Column("rewritten_at", sa.DateTime(), nullable=True),
        sa.Column("rewritten_from", sa.String(length=64), nullable=True),
        sa.Column("rewritten_to", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source", "branch"),
    )


def downgrade() -> None:
    """Drop them."""
    op.drop_table("recipe_branch")
    with op.batch_alter_table("build") as batch:
        batch.drop_column("commit")
