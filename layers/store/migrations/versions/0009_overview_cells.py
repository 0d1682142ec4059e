"""Overview cells of the polygon layers: what low-zoom tiles are drawn from, kept by triggers.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 03:55:00

See :mod:`layers.overviews`. Each polygon layer that is not the frame gets an index on its
features' span, a trigger function of its own (its fields), four statement triggers and
its cells filled. A layer declared later gets them in the migration that creates its table
(``op.execute`` each of ``layers.overviews.install_sql(layer)``); a change of the cells'
rules is a migration that runs them again (``CREATE OR REPLACE``, then a refill).
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from layers.overviews import install_sql, uninstall_sql
from layers.registry import get_layer

revision: str = '0009'
down_revision: Union[str, None] = '0008'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

CELL_LAYERS = ("watersheds", "grazing_bans", "eco_projects", "subsidence_zones", "land_leases", "caragana_plots")


def upgrade() -> None:
    op.create_table(
        'layer_cells',
        sa.Column('layer', sa.Text(), nullable=False),
        sa.Column('ix', sa.Integer(), nullable=False),
        sa.Column('iy', sa.Integer(), nullable=False),
        sa.Column('agg_from', sa.SmallInteger(), nullable=False),
        sa.Column('parcels', sa.Integer(), nullable=False),
        sa.Column('area_m2', sa.Double(), nullable=False),
        sa.Column('lat_sum', sa.Double(), nullable=False),
        sa.Column('numbers', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint('layer', 'ix', 'iy', 'agg_from', name=op.f('pk_layer_cells')),
    )
    op.create_table(
        'layer_cell_codes',
        sa.Column('layer', sa.Text(), nullable=False),
        sa.Column('field', sa.Text(), nullable=False),
        sa.Column('ix', sa.Integer(), nullable=False),
        sa.Column('iy', sa.Integer(), nullable=False),
        sa.Column('agg_from', sa.SmallInteger(), nullable=False),
        sa.Column('value', sa.Text(), nullable=False),
        sa.Column('n', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('layer', 'field', 'ix', 'iy', 'agg_from', 'value', name=op.f('pk_layer_cell_codes')),
    )
    for name in CELL_LAYERS:
        for statement in install_sql(get_layer(name)):
            op.execute(statement)


def downgrade() -> None:
    for name in CELL_LAYERS:
        for statement in uninstall_sql(get_layer(name)):
            op.execute(statement)
    op.drop_table('layer_cell_codes')
    op.drop_table('layer_cells')
