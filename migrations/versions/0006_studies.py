"""Studies and their trials (``grouping.studies``; ``POST /studies``, ask and tell).

``studies`` holds a study's tasks, strategy, execution (builtin or external), value kind, costs,
budgets, training config, seed, lease length and attempts; ``trials`` one network each (unique per
study and network), with its state, lease, values and timings. The downgrade drops both.

Revision ID: 0006
Revises: 0005
Create Date: 2025-01-07
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

JSONDocument = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "studies",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("tasks", JSONDocument, nullable=False),
        sa.Column("strategy", sa.String(32), nullable=False),
        sa.Column("execution", sa.String(16), nullable=False),
        sa.Column("value_kind", sa.String(16), nullable=False),
        sa.Column("costs", JSONDocument, nullable=False),
        sa.Column("half_singletons", sa.Boolean(), nullable=False),
        sa.Column("budgets", JSONDocument, nullable=False),
        sa.Column("config", JSONDocument, nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("lease_seconds", sa.Float(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("rounds", sa.Integer(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("finished_at", Timestamp, nullable=True),
    )
    op.create_index("ix_studies_project_created", "studies", ["project", "created_at"])
    op.create_table(
        "trials",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("study_id", sa.String(36), sa.ForeignKey("studies.id", ondelete="CASCADE"), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("network", sa.Text(), nullable=False),
        sa.Column("tasks", JSONDocument, nullable=False),
        sa.Column("size", sa.String(8), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("epochs", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_id", sa.String(36), nullable=True),
        sa.Column("lease_expires_at", Timestamp, nullable=True),
        sa.Column("heartbeat_at", Timestamp, nullable=True),
        sa.Column("worker", sa.String(255), nullable=True),
        sa.Column("val", JSONDocument, nullable=True),
        sa.Column("test", JSONDocument, nullable=True),
        sa.Column("epochs_run", sa.Integer(), nullable=True),
        sa.Column("cost", sa.Float(), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.Column("error", JSONDocument, nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("started_at", Timestamp, nullable=True),
        sa.Column("finished_at", Timestamp, nullable=True),
        sa.UniqueConstraint("study_id", "network", name="uq_trials_study_network"),
    )
    op.create_index("ix_trials_study_state_number", "trials", ["study_id", "state", "number"])


def downgrade() -> None:
    op.drop_table("trials")
    op.drop_table("studies")
