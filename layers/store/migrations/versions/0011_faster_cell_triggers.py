"""Faster cell triggers: inserted rows add to their cells; touched cells are found by joins.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 04:45:00

An import in batches of 20 000 plots spent 7-9 s of 11 in the cell triggers of 0009
(each batch recomputed the cells it touched from the whole table, the coded values read three
times); now an INSERT adds its rows' counts and sums to their cells (``landeco_add_sums``), and
an UPDATE or DELETE recomputes its cells found by joins. The functions are replaced (``CREATE OR
REPLACE``); the triggers and cells stay.
"""
from typing import Sequence, Union

from alembic import op

from layers.overviews import ADD_SUMS_SQL, function_sql
from layers.registry import get_layer

revision: str = '0011'
down_revision: Union[str, None] = '0010'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

CELL_LAYERS = ("watersheds", "grazing_bans", "eco_projects", "subsidence_zones", "land_leases", "caragana_plots")


def upgrade() -> None:
    op.execute(ADD_SUMS_SQL)
    for name in CELL_LAYERS:
        op.execute(function_sql(get_layer(name)))


def downgrade() -> None:
    pass  # the slower functions of 0009 gave the same cells (landeco_add_sums is left, unused)
