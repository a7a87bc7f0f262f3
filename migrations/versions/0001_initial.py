"""Initial schema: datasets, jobs, affinity results, network tables, groupings.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSONDocument = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("n_rows", sa.Integer(), nullable=False),
        sa.Column("columns", JSONDocument, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
    )
    op.create_index("ix_datasets_project", "datasets", ["project"])

    op.create_table(
        "jobs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("spec", JSONDocument, nullable=False),
        sa.Column("spec_hash", sa.String(64), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("dataset_id", sa.String(36), sa.ForeignKey("datasets.id", ondelete="RESTRICT"), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("progress_fraction", sa.Float(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=True),
        sa.Column("step", sa.Integer(), nullable=True),
        sa.Column("total_steps", sa.Integer(), nullable=True),
        sa.Column("eta_seconds", sa.Float(), nullable=True),
        sa.Column("losses", JSONDocument, nullable=True),
        sa.Column("device", sa.String(64), nullable=True),
        sa.Column("worker", sa.String(255), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("checkpoint_dir", sa.Text(), nullable=True),
        sa.Column("error", JSONDocument, nullable=True),
        sa.Column("run_seconds", sa.Float(), nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("started_at", Timestamp, nullable=True),
        sa.Column("heartbeat_at", Timestamp, nullable=True),
        sa.Column("finished_at", Timestamp, nullable=True),
        sa.UniqueConstraint("project", "idempotency_key", name="uq_jobs_project_idempotency_key"),
    )
    op.create_index("ix_jobs_project_status_created", "jobs", ["project", "status", "created_at"])

    op.create_table(
        "affinity_results",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(36), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("method", sa.String(32), nullable=False),
        sa.Column("tasks", JSONDocument, nullable=False),
        sa.Column("matrix", JSONDocument, nullable=False),
        sa.Column("trajectory", JSONDocument, nullable=False),
        sa.Column("metadata", JSONDocument, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.UniqueConstraint("job_id", "method", name="uq_affinity_results_job_method"),
    )
    op.create_index("ix_affinity_results_job_id", "affinity_results", ["job_id"])

    op.create_table(
        "network_tables",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(36), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("method", sa.String(32), nullable=False),
        sa.Column("singletons", sa.String(16), nullable=False),
        sa.Column("problem", JSONDocument, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.UniqueConstraint("job_id", "method", "singletons", name="uq_network_tables_job_method_singletons"),
    )
    op.create_index("ix_network_tables_job_id", "network_tables", ["job_id"])

    op.create_table(
        "groupings",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column("job_id", sa.String(36), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("method", sa.String(32), nullable=False),
        sa.Column("solver", sa.String(32), nullable=False),
        sa.Column("singletons", sa.String(16), nullable=False),
        sa.Column("budget", sa.Float(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("objective", sa.Float(), nullable=True),
        sa.Column("solve_seconds", sa.Float(), nullable=False),
        sa.Column("solution", JSONDocument, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.UniqueConstraint(
            "job_id", "method", "solver", "singletons", "budget", name="uq_groupings_job_method_solver_budget"
        ),
    )
    op.create_index("ix_groupings_job_id", "groupings", ["job_id"])


def downgrade() -> None:
    for table in ("groupings", "network_tables", "affinity_results", "jobs", "datasets"):
        op.drop_table(table)
