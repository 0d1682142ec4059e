"""Migrations create the registry's schema, round-trip, and match the code."""

import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from typer.testing import CliRunner

from api.cli import app
from layers.registry import LAYERS
from layers.store import migrations
from layers.store.database import engine_for
from layers.store.migrate import (
    alembic_config,
    current_revision,
    downgrade,
    head_revision,
    include_object,
    new_revision,
    next_revision_id,
    upgrade,
)
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


def test_a_database_made_without_postgis_is_migrated(empty_db_url):
    # an operator's own database (LANDECO_DATABASE_URL) that nobody enabled PostGIS in
    with engine_for(empty_db_url.render_as_string(hide_password=False)).begin() as conn:
        conn.execute(sa.text("DROP EXTENSION postgis CASCADE"))
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


@pytest.fixture
def scripts(tmp_path) -> str:
    """A copy of the migrations folder, so that tests write their migrations there."""
    copy = tmp_path / "migrations"
    shutil.copytree(Path(migrations.__file__).parent, copy,
                    ignore=shutil.ignore_patterns("__pycache__"))
    return str(copy)


def test_revision_autogenerates_what_the_database_lacks(new_database, scripts):
    with new_database("landeco_test_rev") as url:
        with engine_for(url.render_as_string(hide_password=False)).begin() as conn:
            conn.execute(sa.text("ALTER TABLE uploads DROP COLUMN stage"))
        path = new_revision(url, "Put back the stage", script_location=scripts)
        assert path is not None and path.name == f"{next_revision_id()}_put_back_the_stage.py"
        text = path.read_text()
        assert f"down_revision: Union[str, None] = '{head_revision()}'" in text
        assert "op.add_column('uploads', sa.Column('stage'" in text
        command.upgrade(alembic_config(url, scripts), "head")  # the new migration applies
        with engine_for(url.render_as_string(hide_password=False)).connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"include_object": include_object})
            assert compare_metadata(ctx, metadata) == []


def test_revision_empty_is_for_writing_by_hand(scripts):
    path = new_revision(None, "by hand", autogenerate=False, script_location=scripts)
    assert path.name == f"{next_revision_id()}_by_hand.py"
    assert "def upgrade() -> None:\n    pass" in path.read_text()
    assert next_revision_id(scripts) == f"{int(next_revision_id()) + 1:04d}"


def test_revision_command_writes_nothing_when_the_schema_is_current(db_url, monkeypatch):
    versions = Path(migrations.__file__).parent / "versions"
    before = sorted(versions.glob("*.py"))
    monkeypatch.setenv("LANDECO_DATABASE_URL", db_url.render_as_string(hide_password=False))
    result = CliRunner().invoke(app, ["db", "revision", "-m", "nothing to do"])
    assert result.exit_code == 0, result.output
    assert "no migration written" in result.output
    assert sorted(versions.glob("*.py")) == before
