"""Initial MOS schema: study, method, source_image, stimulus, rater, trial, rating.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('study',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('mode', sa.String(length=8), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('scale', sa.Integer(), nullable=False),
    sa.Column('votes_per_stimulus', sa.Integer(), nullable=False),
    sa.Column('trials_per_rater', sa.Integer(), nullable=True),
    sa.Column('break_every', sa.Integer(), nullable=False),
    sa.Column('repeats', sa.Integer(), nullable=False),
    sa.Column('seed', sa.Integer(), nullable=False),
    sa.Column('crop', sa.Integer(), nullable=True),
    sa.Column('stimuli_dir', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("mode IN ('acr', 'pair', 'both')", name=op.f('ck_study_mode')),
    sa.CheckConstraint("status IN ('open', 'closed')", name=op.f('ck_study_status')),
    sa.CheckConstraint('break_every >= 0', name=op.f('ck_study_break_every')),
    sa.CheckConstraint('repeats >= 0', name=op.f('ck_study_repeats')),
    sa.CheckConstraint('scale >= 1', name=op.f('ck_study_scale')),
    sa.CheckConstraint('trials_per_rater IS NULL OR trials_per_rater >= 1', name=op.f('ck_study_cap')),
    sa.CheckConstraint('votes_per_stimulus >= 1', name=op.f('ck_study_votes')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_study')),
    sa.UniqueConstraint('name', name=op.f('uq_study_name'))
    )
    op.create_table('method',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('spec', sa.Text(), nullable=True),
    sa.CheckConstraint("role IN ('low_anchor', 'high_anchor', 'test')", name=op.f('ck_method_role')),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_method_study_id_study'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_method')),
    sa.UniqueConstraint('study_id', 'name', name=op.f('uq_method_study_id_name'))
    )
    op.create_index(op.f('ix_method_study_id'), 'method', ['study_id'])

    op.create_table('rater',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('token', sa.String(length=64), nullable=False),
    sa.Column('display', sa.String(length=200), nullable=True),
    sa.Column('seed', sa.Integer(), nullable=False),
    sa.Column('n_trials', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completion_code', sa.String(length=32), nullable=True),
    sa.Column('qc_flags', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_rater_study_id_study'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rater')),
    sa.UniqueConstraint('token', name=op.f('uq_rater_token'))
    )
    op.create_index(op.f('ix_rater_study_id'), 'rater', ['study_id'])

    op.create_table('source_image',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=300), nullable=False),
    sa.Column('hr_sha256', sa.String(length=64), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('is_calibration', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_source_image_study_id_study'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_source_image')),
    sa.UniqueConstraint('study_id', 'name', name=op.f('uq_source_image_study_id_name'))
    )
    op.create_index(op.f('ix_source_image_study_id'), 'source_image', ['study_id'])

    op.create_table('stimulus',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('method_id', sa.Integer(), nullable=False),
    sa.Column('source_id', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('psnr', sa.Float(), nullable=True),
    sa.Column('ssim', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['method_id'], ['method.id'], name=op.f('fk_stimulus_method_id_method'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['source_id'], ['source_image.id'], name=op.f('fk_stimulus_source_id_source_image'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_stimulus_study_id_study'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stimulus')),
    sa.UniqueConstraint('method_id', 'source_id', name=op.f('uq_stimulus_method_id_source_id'))
    )
    op.create_index(op.f('ix_stimulus_method_id'), 'stimulus', ['method_id'])
    op.create_index(op.f('ix_stimulus_sha256'), 'stimulus', ['sha256'])
    op.create_index(op.f('ix_stimulus_source_id'), 'stimulus', ['source_id'])
    op.create_index(op.f('ix_stimulus_study_id'), 'stimulus', ['study_id'])

    op.create_table('trial',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('rater_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('mode', sa.String(length=4), nullable=False),
    sa.Column('stimulus_id', sa.Integer(), nullable=True),
    sa.Column('stimulus_a_id', sa.Integer(), nullable=True),
    sa.Column('stimulus_b_id', sa.Integer(), nullable=True),
    sa.Column('is_gold', sa.Boolean(), nullable=False),
    sa.Column('is_repeat_of', sa.Integer(), nullable=True),
    sa.Column('shown_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("(mode = 'acr' AND stimulus_id IS NOT NULL AND stimulus_a_id IS NULL AND stimulus_b_id IS NULL) OR (mode = 'pair' AND stimulus_id IS NULL AND stimulus_a_id IS NOT NULL AND stimulus_b_id IS NOT NULL AND stimulus_a_id <> stimulus_b_id)", name=op.f('ck_trial_stimuli')),
    sa.CheckConstraint("mode IN ('acr', 'pair')", name=op.f('ck_trial_mode')),
    sa.CheckConstraint('position >= 0', name=op.f('ck_trial_position')),
    sa.ForeignKeyConstraint(['is_repeat_of'], ['trial.id'], name=op.f('fk_trial_is_repeat_of_trial')),
    sa.ForeignKeyConstraint(['rater_id'], ['rater.id'], name=op.f('fk_trial_rater_id_rater'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['stimulus_a_id'], ['stimulus.id'], name=op.f('fk_trial_stimulus_a_id_stimulus')),
    sa.ForeignKeyConstraint(['stimulus_b_id'], ['stimulus.id'], name=op.f('fk_trial_stimulus_b_id_stimulus')),
    sa.ForeignKeyConstraint(['stimulus_id'], ['stimulus.id'], name=op.f('fk_trial_stimulus_id_stimulus')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_trial')),
    sa.UniqueConstraint('rater_id', 'position', name=op.f('uq_trial_rater_id_position'))
    )
    op.create_index('ix_trial_pair', 'trial', ['stimulus_a_id', 'stimulus_b_id'])
    op.create_index(op.f('ix_trial_rater_id'), 'trial', ['rater_id'])
    op.create_index('ix_trial_stimulus_id', 'trial', ['stimulus_id'])

    op.create_table('rating',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('trial_id', sa.Integer(), nullable=False),
    sa.Column('rater_id', sa.Integer(), nullable=False),
    sa.Column('score', sa.Integer(), nullable=True),
    sa.Column('choice', sa.String(length=4), nullable=True),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('response_ms', sa.Integer(), nullable=True),
    sa.Column('viewport_w', sa.Integer(), nullable=True),
    sa.Column('viewport_h', sa.Integer(), nullable=True),
    sa.Column('device_pixel_ratio', sa.Float(), nullable=True),
    sa.CheckConstraint("choice IS NULL OR choice IN ('A', 'B', 'none')", name=op.f('ck_rating_choice')),
    sa.CheckConstraint('(score IS NULL) <> (choice IS NULL)', name=op.f('ck_rating_one_answer')),
    sa.CheckConstraint('response_ms IS NULL OR response_ms >= 0', name=op.f('ck_rating_response_ms')),
    sa.CheckConstraint('score IS NULL OR (score >= 1 AND score <= 5)', name=op.f('ck_rating_score')),
    sa.ForeignKeyConstraint(['rater_id'], ['rater.id'], name=op.f('fk_rating_rater_id_rater'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['trial_id'], ['trial.id'], name=op.f('fk_rating_trial_id_trial'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rating')),
    sa.UniqueConstraint('trial_id', name=op.f('uq_rating_trial_id'))
    )
    op.create_index(op.f('ix_rating_rater_id'), 'rating', ['rater_id'])


def downgrade() -> None:
    op.drop_index(op.f('ix_rating_rater_id'), table_name='rating')

    op.drop_table('rating')
    op.drop_index('ix_trial_stimulus_id', table_name='trial')
    op.drop_index(op.f('ix_trial_rater_id'), table_name='trial')
    op.drop_index('ix_trial_pair', table_name='trial')

    op.drop_table('trial')
    op.drop_index(op.f('ix_stimulus_study_id'), table_name='stimulus')
    op.drop_index(op.f('ix_stimulus_source_id'), table_name='stimulus')
    op.drop_index(op.f('ix_stimulus_sha256'), table_name='stimulus')
    op.drop_index(op.f('ix_stimulus_method_id'), table_name='stimulus')

    op.drop_table('stimulus')
    op.drop_index(op.f('ix_source_image_study_id'), table_name='source_image')

    op.drop_table('source_image')
    op.drop_index(op.f('ix_rater_study_id'), table_name='rater')

    op.drop_table('rater')
    op.drop_index(op.f('ix_method_study_id'), table_name='method')

    op.drop_table('method')
    op.drop_table('study')
