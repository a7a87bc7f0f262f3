"""Affinity runs measured elsewhere and uploaded (``POST /affinity-runs``), and their groupings.

``affinity_runs`` holds a run's tasks, one matrix per method, per-epoch trajectories and metadata.
A grouping now belongs to a job (``job_id``) or to such a run (``run_id``, deleted with it): exactly
one of the two is set, and groupings of a run are unique per (run, method, solver, singletons,
budget) as a job's are. The downgrade drops the runs and their groupings.

Revision ID: 0004
Revises: 0003
Create Date: 2025-01-04
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

JSONDocument = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "affinity_runs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("tasks", JSONDocument, nullable=False),
        sa.Column("methods", JSONDocument, nullable=False),
        sa.Column("epochs", sa.Integer(), nullable=False),
        sa.Column("steps", sa.Integer(), nullable=True),
        sa.Column("matrices", JSONDocument, nullable=False),
        sa.Column("trajectories", JSONDocument, nullable=False),
        sa.Column("metadata", JSONDocument, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
    )
    op.create_index("ix_affinity_runs_project_created", "affinity_runs", ["project", "created_at"])
    with op.batch_alter_table("groupings") as batch:
        batch.alter_column("job_id", existing_type=sa.String(36), nullable=True)
        batch.add_column(sa.Column("run_id", sa.String(36), nullable=True))
        batch.create_foreign_key(
            "fk_groupings_run_id", "affinity_runs", ["run_id"], ["id"], ondelete="CASCADE"
        )
        batch.create_unique_constraint(
            "uq_groupings_run_method_solver_budget", ["run_id", "method", "solver", "singletons", "budget"]
        )
        batch.create_check_constraint("ck_groupings_one_source", "(job_id IS NULL) <> (run_id IS NULL)")
        batch.create_index("ix_groupings_run_id", ["run_id"])


def downgrade() -> None:
    op.execute("DELETE FROM groupings WHERE run_id IS NOT NULL")
    with op.batch_alter_table("groupings") as batch:
        batch.drop_index("ix_groupings_run_id")
        batch.drop_constraint("ck_groupings_one_source", type_="check")
        batch.drop_constraint("uq_groupings_run_method_solver_budget", type_="unique")
        batch.drop_constraint("fk_groupings_run_id", type_="foreignkey")
        batch.drop_column("run_id")
        batch.alter_column("job_id", existing_type=sa.String(36), nullable=False)
    op.drop_index("ix_affinity_runs_project_created", table_name="affinity_runs")
    op.drop_table("affinity_runs")
