"""Zonal statistics: each feature's statistics over each raster, kept as a time series.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 06:10:00

One row per (raster, layer, feature, zone): the zone is the feature itself or a ring outside it
(``ring_500``); the raster's kind and acquisition date are copied so that a feature's series is
one index scan. A new run for the same raster, layer, feature and zone replaces the row. The
rows go with their raster (ON DELETE CASCADE); ``job_id`` names the job that computed them.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0013'
down_revision: Union[str, None] = '0012'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

STATS = ("mean", "median", "min", "max", "stdev", "area_m2", "area_mu", "share_above")


def upgrade() -> None:
    op.create_table(
        'zonal_stats',
        sa.Column('raster_id', sa.BigInteger(), nullable=False),
        sa.Column('layer', sa.Text(), nullable=False),
        sa.Column('feature_id', sa.BigInteger(), nullable=False),
        sa.Column('zone', sa.Text(), nullable=False),
        sa.Column('kind', sa.Text(), nullable=False),
        sa.Column('acquired', sa.Date(), nullable=False),
        sa.Column('pixels', sa.Double(), nullable=False),
        *(sa.Column(name, sa.Double(), nullable=True) for name in STATS),
        sa.Column('threshold', sa.Double(), nullable=True),
        sa.Column('computed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('job_id', sa.BigInteger(), nullable=True),
        sa.CheckConstraint("zone = 'feature' OR zone ~ '^ring_[0-9.]+$'", name=op.f('ck_zonal_stats_zone_name')),
        sa.ForeignKeyConstraint(['raster_id'], ['rasters.id'], name=op.f('fk_zonal_stats_raster_id'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('raster_id', 'layer', 'feature_id', 'zone', name=op.f('pk_zonal_stats')),
    )
    op.create_index('ix_zonal_stats_layer', 'zonal_stats', ['layer', 'feature_id', 'acquired'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_zonal_stats_layer', table_name='zonal_stats')
    op.drop_table('zonal_stats')
