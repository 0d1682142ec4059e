"""Layer versions (bumped by every write, whatever makes it) and a shared cache of vector tiles.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 03:40:00

A statement-level trigger on every layer table counts its writes in ``layer_versions``: an
import, an edit, a restore or an UPDATE typed in psql all bump it. Tiles are cached under
the versions of their layers (``tile_cache``, unlogged: a crash only empties it), so a
tile built before a write is never served after it. A layer declared later gets the trigger
in the migration that creates its table (``landeco_layer_version_trigger``).
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: Union[str, None] = '0007'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

LAYER_TABLES = ("villages", "watersheds", "grazing_bans", "eco_projects", "subsidence_zones", "land_leases",
                "caragana_plots", "fence_lines")


def upgrade() -> None:
    op.create_table(
        'layer_versions',
        sa.Column('layer', sa.Text(), nullable=False),
        sa.Column('version', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
        sa.Column('changed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.PrimaryKeyConstraint('layer', name=op.f('pk_layer_versions')),
    )
    op.create_table(
        'tile_cache',
        sa.Column('key', sa.Text(), nullable=False),
        sa.Column('version', sa.Text(), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.Column('build_ms', sa.Double(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_tile_cache')),
        prefixes=['UNLOGGED'],
    )
    op.execute("""
        CREATE FUNCTION landeco_bump_layer_version() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO layer_versions AS v (layer, version, changed_at) VALUES (TG_TABLE_NAME, 1, now())
            ON CONFLICT (layer) DO UPDATE SET version = v.version + 1, changed_at = now();
            RETURN NULL;
        END $$""")
    op.execute("""
        CREATE FUNCTION landeco_layer_version_trigger(tbl regclass) RETURNS void LANGUAGE plpgsql AS $$
        BEGIN
            EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s '
                           'FOR EACH STATEMENT EXECUTE FUNCTION landeco_bump_layer_version()',
                           'bump_layer_version', tbl);
            INSERT INTO layer_versions (layer) VALUES (tbl::text) ON CONFLICT DO NOTHING;
        END $$""")
    for table in LAYER_TABLES:
        op.execute(f"SELECT landeco_layer_version_trigger('{table}'::regclass)")


def downgrade() -> None:
    for table in LAYER_TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS bump_layer_version ON {table}")
    op.execute("DROP FUNCTION landeco_layer_version_trigger(regclass)")
    op.execute("DROP FUNCTION landeco_bump_layer_version()")
    op.drop_table('tile_cache')
    op.drop_table('layer_versions')
