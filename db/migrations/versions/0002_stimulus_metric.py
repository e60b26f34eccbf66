"""Further objective metrics per stimulus (LPIPS, DISTS, NIQE, BRISQUE...): table stimulus_metric.

PSNR/SSIM stay columns of ``stimulus``; every other metric the study builder computes is one row
``(stimulus_id, name, value)``, unique per stimulus and name. Existing studies keep their rows and
simply have no further metrics.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('stimulus_metric',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('stimulus_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['stimulus_id'], ['stimulus.id'], name=op.f('fk_stimulus_metric_stimulus_id_stimulus'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stimulus_metric')),
    sa.UniqueConstraint('stimulus_id', 'name', name=op.f('uq_stimulus_metric_stimulus_id_name'))
    )


def downgrade() -> None:
    op.drop_table('stimulus_metric')
