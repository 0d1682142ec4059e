"""landeco backup → restore into a fresh database: every row of every table equal.

A damaged or foreign archive is refused with nothing written.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from api.cli import app
from layers.backup import (
    BackupDamagedError,
    BackupForeignError,
    RestoreTargetNotEmptyError,
    create_backup,
    restore_backup,
)
from layers.settings import Settings
from layers.store.database import engine_for


def _engine(url):
    return engine_for(url.render_as_string(hide_password=False))


def every_row(url) -> dict[str, tuple[int, str]]:
    """Each table's row count and a digest of all its rows (in a fixed order)."""
    with _engine(url).connect() as conn:
        tables = conn.scalars(sa.text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")).all()
        return {t: tuple(conn.execute(sa.text(
            f"SELECT count(*), md5(coalesce(string_agg(r::text, '|' ORDER BY r::text), '')) FROM \"{t}\" r"
        )).one()) for t in tables}


def fill(url) -> None:
    """Some features, changes (so history), an audit entry and an account."""
    with _engine(url).begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO villages (code, name, kind, geom) VALUES ('150623101201', '测试村', 'village', "
            "ST_Multi(ST_MakeEnvelope(107.5, 38.1, 107.51, 38.11, 4326)))"))
        conn.execute(sa.text(
            "INSERT INTO caragana_plots (code, village_code, planted_year, method, geom) VALUES "
            "('NT-1', '150623101201', 2020, 'restoration', "
            "ST_Multi(ST_MakeEnvelope(107.5, 38.1, 107.501, 38.101, 4326)))"))
        conn.execute(sa.text("INSERT INTO audit (actor, action) VALUES ('巴图', 'feature.edit')"))
    with _engine(url).begin() as conn:
        conn.execute(sa.text("UPDATE caragana_plots SET seedlings = 5000"))
        conn.execute(sa.text("INSERT INTO users (name, roles) VALUES ('batu', ARRAY['surveyor'])"))


@pytest.fixture
def source(new_database, tmp_path):
    with new_database("landeco_test_backup_src") as url:
        fill(url)
        settings = Settings(database_url=url.render_as_string(hide_password=False), home=tmp_path / "src")
        folder = settings.storage / "uploads" / ("a" * 32)
        folder.mkdir(parents=True)
        (folder / "original.zip").write_bytes(b"PK\x03\x04 stored upload bytes")
        yield url, settings


def test_backup_then_restore_into_a_fresh_database_is_equal(source, new_database, tmp_path):
    url, settings = source
    archive = tmp_path / "nightly.tar"
    manifest = create_backup(url, settings, archive)
    assert manifest["versions"]["schema_revision"] and manifest["versions"]["postgresql"]
    assert f"storage/uploads/{'a' * 32}/original.zip" in manifest["files"]
    with new_database("landeco_test_backup_dst", migrate=False) as fresh:
        target = Settings(database_url=fresh.render_as_string(hide_password=False), home=tmp_path / "dst")
        done = restore_backup(fresh, target, archive)
        assert done.files == 1
        assert every_row(fresh) == every_row(url)
        assert every_row(fresh)["caragana_plots_history"][0] == 2  # an insert and an update
        restored = target.storage / "uploads" / ("a" * 32) / "original.zip"
        assert restored.read_bytes() == b"PK\x03\x04 stored upload bytes"
        # the history keeps following after a restore (its triggers came back with the dump)
        with _engine(fresh).begin() as conn:
            conn.execute(sa.text("UPDATE caragana_plots SET seedlings = 1"))
            assert conn.scalar(sa.text("SELECT count(*) FROM caragana_plots_history")) == 3
        # a second restore into the now full database is refused
        with pytest.raises(RestoreTargetNotEmptyError):
            restore_backup(fresh, Settings(database_url=fresh.render_as_string(hide_password=False),
                                           home=tmp_path / "dst2"), archive)


def _tamper(archive: Path, out: Path) -> Path:
    """A copy of ``archive`` with one byte of the database dump changed (its size kept)."""
    with tarfile.open(archive) as src, tarfile.open(out, "w") as dst:
        for member in src:
            data = src.extractfile(member).read()
            if member.name == "database.dump":
                middle = len(data) // 2
                data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]
            dst.addfile(member, io.BytesIO(data))
    return out


def _foreign(out: Path) -> Path:
    body = json.dumps({"format": "something-else"}).encode()
    with tarfile.open(out, "w") as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    return out


@pytest.mark.parametrize("spoil, error", [
    ("tampered", BackupDamagedError),
    ("cut", BackupDamagedError),
    ("foreign", BackupForeignError),
    ("not_tar", BackupForeignError),
])
def test_a_damaged_or_foreign_archive_is_refused_with_nothing_written(source, new_database, tmp_path, spoil,
                                                                      error):
    url, settings = source
    archive = tmp_path / "good.tar"
    create_backup(url, settings, archive)
    if spoil == "tampered":
        bad = _tamper(archive, tmp_path / "bad.tar")
    elif spoil == "cut":
        bad = tmp_path / "bad.tar"
        bad.write_bytes(archive.read_bytes()[: archive.stat().st_size * 2 // 3])
    elif spoil == "foreign":
        bad = _foreign(tmp_path / "bad.tar")
    else:
        bad = tmp_path / "bad.tar"
        bad.write_bytes(b"%PDF-1.4 not an archive at all" * 100)
    with new_database("landeco_test_backup_bad", migrate=False) as fresh:
        target = Settings(database_url=fresh.render_as_string(hide_password=False), home=tmp_path / "dst")
        before = every_row(fresh)
        with pytest.raises(error):
            restore_backup(fresh, target, bad)
        assert every_row(fresh) == before  # nothing written
        assert not (target.storage / "uploads").exists()


def test_the_commands_back_up_and_refuse(source, tmp_path, monkeypatch):
    url, settings = source
    monkeypatch.setenv("LANDECO_DATABASE_URL", url.render_as_string(hide_password=False))
    monkeypatch.setenv("LANDECO_HOME", str(settings.home))
    out = tmp_path / "cli.tar"
    result = CliRunner().invoke(app, ["backup", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.exists() and "wrote" in result.output
    refused = CliRunner().invoke(app, ["restore", str(out)])  # the source is not empty
    assert refused.exit_code == 1 and "restore_target_not_empty" in refused.output
