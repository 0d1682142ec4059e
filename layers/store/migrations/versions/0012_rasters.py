"""Rasters: vegetation index, cover, elevation … stored as COGs, their footprints in PostGIS.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 06:00:00

One row per raster (``layers.rasters``): what it measures (``kind``), when it was acquired,
where its Cloud-Optimized GeoTIFF is (``uri``, what rasterio opens) and its grid; the
footprint (lon/lat) finds the rasters over a place.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

revision: str = '0012'
down_revision: Union[str, None] = '0011'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_geospatial_table(
        'rasters',
        sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column('kind', sa.Text(), nullable=False),
        sa.Column('acquired', sa.Date(), nullable=False),
        sa.Column('source', sa.Text(), nullable=True),
        sa.Column('band_meaning', sa.Text(), nullable=True),
        sa.Column('name', sa.Text(), nullable=True),
        sa.Column('uri', sa.Text(), nullable=False),
        sa.Column('crs', sa.Text(), nullable=False),
        sa.Column('width', sa.Integer(), nullable=True),
        sa.Column('height', sa.Integer(), nullable=True),
        sa.Column('band_count', sa.Integer(), nullable=True),
        sa.Column('dtype', sa.Text(), nullable=True),
        sa.Column('nodata', sa.Double(), nullable=True),
        sa.Column('res_x', sa.Double(), nullable=True),
        sa.Column('res_y', sa.Double(), nullable=True),
        sa.Column('footprint', Geometry(geometry_type='MULTIPOLYGON', srid=4326, dimension=2, spatial_index=False,
                                        from_text='ST_GeomFromEWKT', name='geometry', nullable=False),
                  nullable=False),
        sa.Column('bytes', sa.BigInteger(), nullable=True),
        sa.Column('sha256', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('created_by', sa.Text(), nullable=True),
        sa.CheckConstraint("kind IN ('ndvi', 'fvc', 'dem', 'other')", name=op.f('ck_rasters_kind_domain')),
        sa.CheckConstraint('width > 0 AND height > 0 AND band_count > 0', name=op.f('ck_rasters_size_positive')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_rasters')),
    )
    op.create_geospatial_index('idx_rasters_footprint', 'rasters', ['footprint'], unique=False,
                               postgresql_using='gist', postgresql_ops={})
    op.create_index('ix_rasters_kind_acquired', 'rasters', ['kind', 'acquired'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_rasters_kind_acquired', table_name='rasters')
    op.drop_geospatial_index('idx_rasters_footprint', table_name='rasters', postgresql_using='gist',
                             column_name='footprint')
    op.drop_geospatial_table('rasters')
