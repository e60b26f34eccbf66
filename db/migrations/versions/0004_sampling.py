"""Study sampling: columns study.sampling (balanced | active | adaptive) and study.target_half_width.

Existing studies are ``balanced`` (what they always were) with no target half-width.

Revision ID: 0004_sampling
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004_sampling'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('study') as batch:
        batch.add_column(sa.Column('sampling', sa.String(length=16), server_default='balanced', nullable=False))
        batch.add_column(sa.Column('target_half_width', sa.Float(), nullable=True))
        batch.create_check_constraint('sampling', "sampling IN ('balanced', 'active', 'adaptive')")
        batch.create_check_constraint('target_half_width', 'target_half_width IS NULL OR target_half_width > 0')


def downgrade() -> None:
    with op.batch_alter_table('study') as batch:
        batch.drop_constraint('target_half_width', type_='check')
        batch.drop_constraint('sampling', type_='check')
        batch.drop_column('target_half_width')
        batch.drop_column('sampling')
