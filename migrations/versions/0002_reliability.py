"""Reliability and security: API keys, job attempt history, resume epoch, enqueue time.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSONDocument = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(16), primary_key=True),
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("revoked_at", Timestamp, nullable=True),
    )
    op.create_index("ix_api_keys_project", "api_keys", ["project"])
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("resumed_from_epoch", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("history", JSONDocument, nullable=True))
        batch.add_column(sa.Column("enqueued_at", Timestamp, nullable=True))
    op.create_index("ix_jobs_status_heartbeat", "jobs", ["status", "heartbeat_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_status_heartbeat", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("enqueued_at")
        batch.drop_column("history")
        batch.drop_column("resumed_from_epoch")
    op.drop_index("ix_api_keys_project", table_name="api_keys")
    op.drop_table("api_keys")
