"""Livestock counted per village and year (以草定畜: stock against the pasture's capacity).

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30 06:00:00

Not spatial and without a foreign key to ``villages``: the demo reloads the villages with
TRUNCATE … CASCADE, which must not wipe the counts staff entered; uploads check the codes.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0015'
down_revision: Union[str, None] = '0014'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_ANIMALS = ("sheep", "goats", "cattle", "horses", "camels")


def upgrade() -> None:
    op.create_table(
        'livestock_counts',
        sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column('village_code', sa.Text(), nullable=False),
        sa.Column('year', sa.Integer(), nullable=False),
        *(sa.Column(a, sa.Integer(), server_default=sa.text('0'), nullable=False) for a in _ANIMALS),
        sa.Column('sheep_units', sa.Double(), nullable=True),
        sa.Column('note', sa.Text(), nullable=True),
        sa.Column('created_by', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('updated_by', sa.Text(), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.CheckConstraint('year >= 1990 AND year <= 2100', name=op.f('ck_livestock_counts_year_range')),
        sa.CheckConstraint(' AND '.join(f'{a} >= 0' for a in _ANIMALS),
                           name=op.f('ck_livestock_counts_counts_not_negative')),
        sa.CheckConstraint('sheep_units IS NULL OR sheep_units >= 0',
                           name=op.f('ck_livestock_counts_sheep_units_not_negative')),
        sa.CheckConstraint("btrim(village_code) <> ''", name=op.f('ck_livestock_counts_village_code_not_blank')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_livestock_counts')),
        sa.UniqueConstraint('village_code', 'year', name=op.f('uq_livestock_counts_village_code')),
    )


def downgrade() -> None:
    op.drop_table('livestock_counts')
