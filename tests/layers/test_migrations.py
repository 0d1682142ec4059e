"""Migrations create the registry's schema, round-trip, and match the code."""

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from layers.registry import LAYERS
from layers.store.database import engine_for
from layers.store.migrate import current_revision, downgrade, head_revision, include_object, upgrade
from layers.store.schema import metadata


def _tables(url) -> set[str]:
    with engine_for(url.render_as_string(hide_password=False)).connect() as conn:
        return set(sa.inspect(conn).get_table_names())


def test_upgrade_downgrade_upgrade_round_trip(empty_db_url):
    assert current_revision(empty_db_url) is None
    assert upgrade(empty_db_url) == head_revision()
    assert set(LAYERS) <= _tables(empty_db_url)

    assert upgrade(empty_db_url) == head_revision()  # idempotent

    assert downgrade(empty_db_url) is None
    assert not set(LAYERS) & _tables(empty_db_url)

    assert upgrade(empty_db_url) == head_revision()
    assert set(LAYERS) <= _tables(empty_db_url)


def test_migrated_schema_matches_the_registry(engine):
    """A layer module changed without a migration shows up here as a difference."""
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"include_object": include_object})
        diff = compare_metadata(ctx, metadata)
    assert diff == []


def test_every_geometry_has_a_spatial_index_and_size_an_index(engine):
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT tablename, indexdef FROM pg_indexes WHERE schemaname = 'public'")).all()
    for layer_id, layer in LAYERS.items():
        defs = [d for t, d in rows if t == layer_id]
        assert any("USING gist (geom)" in d for d in defs), layer_id
        size = "(length_m)" if layer.is_linear else "(area_mu)"  # area of polygons, length of lines
        assert any(size in d for d in defs), layer_id


def test_updated_at_is_kept_by_the_database(conn):
    conn.execute(sa.text(
        "INSERT INTO villages (code, name, kind, geom, updated_at) VALUES ('t1', '测试村', "
        "'village', ST_Multi(ST_MakeEnvelope(107, 38, 107.01, 38.01, 4326)), '2000-01-01')"))
    conn.execute(sa.text("UPDATE villages SET population = 5 WHERE code = 't1'"))
    after = conn.execute(sa.text("SELECT updated_at > now() - interval '1 hour' "
                                 "FROM villages WHERE code = 't1'")).scalar()
    assert after is True
