"""Crowd hand-off: study.crowd / completion_url / qualification, rater.participant_id / crowd_params.

A study may name its crowd platform (``prolific`` | ``mturk``: which participant-ID URL parameters the app
captures), a completion redirect URL template, and whether raters pass a qualification step. A rater keeps
the platform's participant ID (unique per study: a second visit resumes that rater) and the other captured
URL parameters. Existing studies and raters get NULLs: volunteers, no redirect, no qualification.

Revision ID: 0005_crowd
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0005_crowd'
down_revision: str | None = '0004_sampling'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('study') as batch:
        batch.add_column(sa.Column('crowd', sa.String(length=16), nullable=True))
        batch.add_column(sa.Column('completion_url', sa.Text(), nullable=True))
        batch.add_column(sa.Column('qualification', sa.Boolean(), nullable=True))
    with op.batch_alter_table('rater') as batch:
        batch.add_column(sa.Column('participant_id', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('crowd_params', sa.Text(), nullable=True))
    # A unique index, not a constraint: SQLite creates it without rebuilding the table.
    op.create_index('ix_rater_participant', 'rater', ['study_id', 'participant_id'], unique=True)


def downgrade() -> None:
    op.drop_index('ix_rater_participant', table_name='rater')
    with op.batch_alter_table('rater') as batch:
        batch.drop_column('crowd_params')
        batch.drop_column('participant_id')
    with op.batch_alter_table('study') as batch:
        batch.drop_column('qualification')
        batch.drop_column('completion_url')
        batch.drop_column('crowd')
