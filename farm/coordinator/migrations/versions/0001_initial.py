"""The coordinator's schema as it was before migrations existed (farm 0.1, issue 4).

A database made by ``create_tables`` before migrations is exactly this revision: it is
stamped with it (not re-created) and upgraded from here.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create every table of the first schema."""
    op.create_table(
        "attestation",
        sa.Column("tx_id", sa.String(length=64), nullable=False),
        sa.Column("build_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("version", sa.String(length=255), nullable=False),
        sa.Column("arch", sa.String(length=32), nullable=False),
        sa.Column("recipe_digest", sa.String(length=71), nullable=False),
        sa.Column("bundle", sa.JSON(), nullable=False),
        sa.Column("ledger_index", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("tree_size", sa.Integer(), nullable=True),
        sa.Column("inclusion_proof", sa.JSON(), nullable=False),
        sa.Column("checkpoint", sa.String(), nullable=True),
        sa.Column("submitted_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tx_id"),
    )
    op.create_index(op.f("ix_attestation_arch"), "attestation", ["arch"], unique=False)
    op.create_index(op.f("ix_attestation_build_id"), "attestation", ["build_id"], unique=True)
    op.create_index(
        op.f("ix_attestation_ledger_index"), "attestation", ["ledger_index"], unique=False
    )
    op.create_index(op.f("ix_attestation_name"), "attestation", ["name"], unique=False)
    op.create_index(
        op.f("ix_attestation_recipe_digest"), "attestation", ["recipe_digest"], unique=False
    )
    op.create_index(op.f("ix_attestation_status"), "attestation", ["status"], unique=False)
    op.create_index(op.f("ix_attestation_version"), "attestation", ["version"], unique=False)
    op.create_table(
        "build",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("recipe_digest", sa.String(length=71), nullable=False),
        sa.Column("recipe", sa.JSON(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("version", sa.String(length=255), nullable=False),
        sa.Column("arch", sa.String(length=32), nullable=False),
        sa.Column("quorum", sa.Integer(), nullable=False),
        sa.Column("builders", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("verdict", sa.JSON(), nullable=True),
        sa.Column("retries", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("origin", sa.String(length=255), nullable=False),
        sa.Column("note", sa.String(), nullable=True),
        sa.Column("managed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_build_name"), "build", ["name"], unique=False)
    op.create_index(op.f("ix_build_recipe_digest"), "build", ["recipe_digest"], unique=False)
    op.create_index(op.f("ix_build_status"), "build", ["status"], unique=False)
    op.create_table(
        "build_attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("build_id", sa.String(length=64), nullable=False),
        sa.Column("builder_id", sa.String(length=64), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("dispatched_at", sa.DateTime(), nullable=False),
        sa.Column("deadline", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("replaced_by", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("build_id", "builder_id"),
    )
    op.create_index(op.f("ix_build_attempt_build_id"), "build_attempt", ["build_id"], unique=False)
    op.create_table(
        "build_result",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("build_id", sa.String(length=64), nullable=False),
        sa.Column("builder_id", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("envelope", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("build_status", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_build_result_build_id"), "build_result", ["build_id"], unique=False)
    op.create_index(
        op.f("ix_build_result_builder_id"), "build_result", ["builder_id"], unique=False
    )
    op.create_table(
        "builder",
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("arches", sa.JSON(), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("public_key", sa.JSON(), nullable=False),
        sa.Column("enrolled_at", sa.DateTime(), nullable=False),
        sa.Column("approved", sa.Boolean(), nullable=False),
        sa.Column("approved_at", sa.DateTime(), nullable=True),
        sa.Column("last_seen", sa.DateTime(), nullable=True),
        sa.Column("builds_done", sa.Integer(), nullable=False),
        sa.Column("agreements", sa.Integer(), nullable=False),
        sa.Column("ledger_index", sa.Integer(), nullable=True),
        sa.Column("ledger_tx_id", sa.String(length=64), nullable=True),
        sa.Column("ledger_error", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "diff_report",
        sa.Column("build_id", sa.String(length=64), nullable=False),
        sa.Column("output", sa.String(length=1024), nullable=False),
        sa.Column("sha256_a", sa.String(length=64), nullable=False),
        sa.Column("sha256_b", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("html_path", sa.String(), nullable=True),
        sa.Column("json_path", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_diff_report_build_id"), "diff_report", ["build_id"], unique=False)
    op.create_table(
        "enrollmenttoken",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("note", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.Column("used_by", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_enrollmenttoken_token_sha256"), "enrollmenttoken", ["token_sha256"], unique=True
    )
    op.create_table(
        "operatortoken",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_operatortoken_token_sha256"), "operatortoken", ["token_sha256"], unique=True
    )
    op.create_table(
        "recipe_entry",
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("commit", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("version", sa.String(length=255), nullable=True),
        sa.Column("digest", sa.String(length=71), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("problems", sa.JSON(), nullable=False),
        sa.Column("seen_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("path"),
    )
    op.create_index(op.f("ix_recipe_entry_digest"), "recipe_entry", ["digest"], unique=False)
    op.create_index(op.f("ix_recipe_entry_name"), "recipe_entry", ["name"], unique=False)
    op.create_table(
        "staging_blob",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("uploaded_by", sa.String(length=64), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("sha256"),
    )
    op.create_table(
        "attestationartifact",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tx_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=1024), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["tx_id"],
            ["attestation.tx_id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tx_id", "name"),
    )
    op.create_index(
        op.f("ix_attestationartifact_sha256"), "attestationartifact", ["sha256"], unique=False
    )
    op.create_index(
        op.f("ix_attestationartifact_tx_id"), "attestationartifact", ["tx_id"], unique=False
    )
    op.create_table(
        "output",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("result_id", sa.Integer(), nullable=False),
        sa.Column("build_id", sa.String(length=64), nullable=False),
        sa.Column("builder_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=1024), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["result_id"],
            ["build_result.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("result_id", "name"),
    )
    op.create_index(op.f("ix_output_build_id"), "output", ["build_id"], unique=False)
    op.create_index(op.f("ix_output_result_id"), "output", ["result_id"], unique=False)
    op.create_index(op.f("ix_output_sha256"), "output", ["sha256"], unique=False)


def downgrade() -> None:
    """Drop them."""

    op.drop_index(op.f("ix_output_sha256"), table_name="output")
    op.drop_index(op.f("ix_output_result_id"), table_name="output")
    op.drop_index(op.f("ix_output_build_id"), table_name="output")
    op.drop_table("output")
    op.drop_index(op.f("ix_attestationartifact_tx_id"), table_name="attestationartifact")
    op.drop_index(op.f("ix_attestationartifact_sha256"), table_name="attestationartifact")
    op.drop_table("attestationartifact")
    op.drop_table("staging_blob")
    op.drop_index(op.f("ix_recipe_entry_name"), table_name="recipe_entry")
    op.drop_index(op.f("ix_recipe_entry_digest"), table_name="recipe_entry")
    op.drop_table("recipe_entry")
    op.drop_index(op.f("ix_operatortoken_token_sha256"), table_name="operatortoken")
    op.drop_table("operatortoken")
    op.drop_index(op.f("ix_enrollmenttoken_token_sha256"), table_name="enrollmenttoken")
    op.drop_table("enrollmenttoken")
    op.drop_index(op.f("ix_diff_report_build_id"), table_name="diff_report")
    op.drop_table("diff_report")
    op.drop_table("builder")
    op.drop_index(op.f("ix_build_result_builder_id"), table_name="build_result")
    op.drop_index(op.f("ix_build_result_build_id"), table_name="build_result")
    op.drop_table("build_result")
    op.drop_index(op.f("ix_build_attempt_build_id"), table_name="build_attempt")
    op.drop_table("build_attempt")
    op.drop_index(op.f("ix_build_status"), table_name="build")
    op.drop_index(op.f("ix_build_recipe_digest"), table_name="build")
    op.drop_index(op.f("ix_build_name"), table_name="build")
    op.drop_table("build")
    op.drop_index(op.f("ix_attestation_version"), table_name="attestation")
    op.drop_index(op.f("ix_attestation_status"), table_name="attestation")
    op.drop_index(op.f("ix_attestation_recipe_digest"), table_name="attestation")
    op.drop_index(op.f("ix_attestation_name"), table_name="attestation")
    op.drop_index(op.f("ix_attestation_ledger_index"), table_name="attestation")
    op.drop_index(op.f("ix_attestation_build_id"), table_name="attestation")
    op.drop_index(op.f("ix_attestation_arch"), table_name="attestation")
    op.drop_table("attestation")
