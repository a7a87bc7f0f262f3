"""Indexes of the job list's keyset pages (``GET /jobs``, newest first, after a cursor job):
``(project, created_at, id)`` for the whole list and ``(project, status, created_at, id)`` (replacing
``(project, status, created_at)``) for one status, so that a page is read from the index in order
without sorting the project's jobs, however deep it lies. The downgrade restores the earlier index.

Revision ID: 0007
Revises: 0006
Create Date: 2025-01-08
"""
from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_jobs_project_created_id", "jobs", ["project", "created_at", "id"])
    op.create_index("ix_jobs_project_status_created_id", "jobs", ["project", "status", "created_at", "id"])
    op.drop_index("ix_jobs_project_status_created", table_name="jobs")


def downgrade() -> None:
    op.create_index("ix_jobs_project_status_created", "jobs", ["project", "status", "created_at"])
    op.drop_index("ix_jobs_project_status_created_id", table_name="jobs")
    op.drop_index("ix_jobs_project_created_id", table_name="jobs")
