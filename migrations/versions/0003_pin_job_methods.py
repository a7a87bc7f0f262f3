"""Pin the methods of stored jobs: a job stored without ``methods`` ran the default of its day, TAG.

The default method changes to warm_start; from now on ``service.jobs.create_job`` stores every job's
methods explicitly. Jobs stored before without them get ``["tag"]`` written in, so re-validating them
(the runner resuming a queued job, ``GET /groupings`` choosing a job's first method) keeps meaning what
they were submitted as. Data only: no column changes. The downgrade leaves the pinned methods in place
(they equal the earlier default, so the earlier code reads them the same).

Revision ID: 0003
Revises: 0002
Create Date: 2025-01-03
"""
from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "UPDATE jobs SET spec = jsonb_set(spec, '{methods}', '[\"tag\"]'::jsonb) "
            "WHERE spec -> 'methods' IS NULL"
        )
    else:
        op.execute(
            "UPDATE jobs SET spec = json_set(spec, '$.methods', json('[\"tag\"]')) "
            "WHERE json_extract(spec, '$.methods') IS NULL"
        )


def downgrade() -> None:
    pass
