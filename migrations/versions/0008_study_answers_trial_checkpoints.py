"""Stored answers of running studies and trial checkpoints.

``study_answers``: a study's solution at one budget under one solver, solved on the measured set of
``ended`` ended trials (``measured`` of them succeeded), one row per (study, solver, ended, budget);
``study_refreshes``: at most one solve of a study's answers in flight (``token`` of its claim, null
when none; a claim past ``expires_at`` may be taken over). ``trial_checkpoints``: the newest
epoch-end checkpoint of a builtin trial (serialised training state, bounded in size), one per trial;
``trials`` gains ``checkpoint_epoch`` (the stored checkpoint's epoch) and ``resumed_from_epoch``
(the epoch the current attempt resumed from). The downgrade drops them.

Revision ID: 0008
Revises: 0007
Create Date: 2025-01-09
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

JSONDocument = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "study_answers",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("study_id", sa.String(36), sa.ForeignKey("studies.id", ondelete="CASCADE"), nullable=False),
        sa.Column("solver", sa.String(32), nullable=False),
        sa.Column("ended", sa.Integer(), nullable=False),
        sa.Column("measured", sa.Integer(), nullable=False),
        sa.Column("budget", sa.Float(), nullable=False),
        sa.Column("solution", JSONDocument, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.UniqueConstraint("study_id", "solver", "ended", "budget", name="uq_study_answers_version_budget"),
    )
    op.create_index("ix_study_answers_study_solver_budget", "study_answers", ["study_id", "solver", "budget"])
    op.create_table(
        "study_refreshes",
        sa.Column("study_id", sa.String(36), sa.ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("token", sa.String(36), nullable=True),
        sa.Column("ended", sa.Integer(), nullable=False),
        sa.Column("requested_at", Timestamp, nullable=False),
        sa.Column("expires_at", Timestamp, nullable=False),
    )
    op.create_table(
        "trial_checkpoints",
        sa.Column("trial_id", sa.String(36), sa.ForeignKey("trials.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
    )
    op.add_column("trials", sa.Column("checkpoint_epoch", sa.Integer(), nullable=True))
    op.add_column("trials", sa.Column("resumed_from_epoch", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        batch.drop_column("resumed_from_epoch")
        batch.drop_column("checkpoint_epoch")
    op.drop_table("trial_checkpoints")
    op.drop_table("study_refreshes")
    op.drop_index("ix_study_answers_study_solver_budget", table_name="study_answers")
    op.drop_table("study_answers")
