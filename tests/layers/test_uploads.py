"""layers.uploads: one commit of an upload at a time, dead committers seen, quota, prune, private files."""

from __future__ import annotations

import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from layers.importer import ImportOptions
from layers.registry import LAYERS
from layers.settings import Settings
from layers.store.database import engine_for
from layers.upload_errors import UploadCommitError, UploadQuotaError
from layers.uploads import commit_upload, create_upload, get_upload, prune_uploads, upload_counts
from tests.data.fixtures import make

LOCK = "SELECT pg_advisory_xact_lock(1970302052, ('x' || substr(:id, 1, 8))::bit(32)::int)"


@pytest.fixture(scope="module")
def url(new_database) -> Iterator[URL]:
    with new_database("landeco_test_lupl") as url:
        yield url


@pytest.fixture
def engine(url: URL) -> Iterator[sa.Engine]:
    engine = engine_for(url.render_as_string(hide_password=False))
    yield engine
    with engine.begin() as conn:
        conn.execute(sa.text("TRUNCATE uploads, " + ", ".join(LAYERS) + " CASCADE"))


@pytest.fixture
def cfg(url: URL, tmp_path: Path) -> Settings:
    return Settings(database_url=url.render_as_string(hide_password=False), home=tmp_path / "home")


def check(engine: sa.Engine, cfg: Settings, path: Path) -> dict:
    with open(path, "rb") as fh:
        return create_upload(engine=engine, settings=cfg, file=fh, file_name=path.name,
                             layer="caragana_plots", options=ImportOptions(layer="caragana_plots"))


def plots(engine: sa.Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        return tuple(conn.execute(sa.text("SELECT count(*), count(DISTINCT code) FROM caragana_plots")).one())


def test_two_commits_at_once_write_once(engine, cfg, tmp_path):
    upload = check(engine, cfg, make.grid_zip(tmp_path, 3000))
    barrier, outcomes = threading.Barrier(2), []

    def commit() -> None:
        barrier.wait()
        try:
            outcomes.append(commit_upload(engine=engine, settings=cfg, upload_id=upload["id"])["state"])
        except UploadCommitError as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=commit) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) in (["committed", "upload_busy"], ["committed", "upload_already_committed"])
    assert plots(engine) == (3000, 3000)
    assert get_upload(engine=engine, upload_id=upload["id"])["state"] == "committed"
    # the commit's work folder is gone; the stored file and preview stay
    folder = cfg.storage / "uploads" / upload["id"]
    assert sorted(p.name for p in folder.iterdir()) == ["original.zip", "preview.geojson"]


def test_a_dead_committer_is_interrupted_and_a_live_one_busy(engine, cfg, tmp_path):
    upload = check(engine, cfg, make.caragana_zip(tmp_path, 3))
    uid = upload["id"]
    folder = cfg.storage / "uploads" / uid
    (folder / "work-deadbeef").mkdir()  # what a killed commit leaves
    with engine.begin() as conn:  # a committer that died: the row says committing, nobody holds the lock
        conn.execute(sa.text("UPDATE uploads SET state = 'committing', stage = 'writing', percentage = 95 "
                             "WHERE id = :id"), {"id": uid})
    state = get_upload(engine=engine, upload_id=uid)
    assert (state["state"], state["stage"], state["percentage"]) == ("interrupted", None, 95)
    with engine.connect() as conn:
        assert upload_counts(conn)["interrupted"] == 1
    with engine.connect() as holder:  # a live committer holds the lock
        holder.begin()
        holder.execute(sa.text(LOCK), {"id": uid})
        assert get_upload(engine=engine, upload_id=uid)["state"] == "committing"
        with pytest.raises(UploadCommitError) as busy:
            commit_upload(engine=engine, settings=cfg, upload_id=uid)
        assert busy.value.code == "upload_busy" and busy.value.status == 409
        assert prune_uploads(engine=engine, settings=cfg, older_than_days=0).removed == []
        holder.rollback()
    assert commit_upload(engine=engine, settings=cfg, upload_id=uid)["state"] == "committed"
    assert plots(engine) == (3, 3) and not (folder / "work-deadbeef").exists()
    with engine.connect() as conn:
        counts = upload_counts(conn)
    assert counts == {"checking": 0, "checked": 0, "committing": 0, "committed": 1, "failed": 0,
                      "interrupted": 0}


def test_quota_prunes_expired_uploads_then_refuses(engine, cfg, tmp_path):
    first = check(engine, cfg, make.caragana_zip(tmp_path / "a", 3))
    with engine.connect() as conn:
        size = conn.scalar(sa.text("SELECT size_bytes FROM uploads"))
    assert size > 1000
    tight = cfg.model_copy(update={"upload_quota_bytes": int(size * 1.5)})
    with pytest.raises(UploadQuotaError) as full:
        check(engine, tight, make.caragana_zip(tmp_path / "b", 3))
    assert full.value.status == 507 and full.value.code == "upload_quota_exceeded"
    assert [p.name for p in (cfg.storage / "uploads").iterdir()] == [first["id"]]  # nothing stored
    with engine.begin() as conn:  # the first one is past the retention now
        conn.execute(sa.text("UPDATE uploads SET created_at = now() - interval '31 days'"))
    second = check(engine, tight, make.caragana_zip(tmp_path / "c", 3))
    assert [p.name for p in (cfg.storage / "uploads").iterdir()] == [second["id"]]
    with engine.connect() as conn:
        assert list(conn.scalars(sa.text("SELECT id FROM uploads"))) == [second["id"]]


def test_prune_keeps_recent_and_dry_run_removes_nothing(engine, cfg, tmp_path):
    old = check(engine, cfg, make.caragana_zip(tmp_path / "a", 2))
    new = check(engine, cfg, make.caragana_zip(tmp_path / "b", 2))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE uploads SET created_at = now() - interval '10 days' WHERE id = :id"),
                     {"id": old["id"]})
    dry = prune_uploads(engine=engine, settings=cfg, older_than_days=7, dry_run=True)
    assert [u["id"] for u in dry.removed] == [old["id"]] and dry.freed_bytes > 0
    assert (cfg.storage / "uploads" / old["id"]).exists()
    assert prune_uploads(engine=engine, settings=cfg).removed == []  # 30 days by default
    done = prune_uploads(engine=engine, settings=cfg, older_than_days=7)
    assert [u["id"] for u in done.removed] == [old["id"]] and done.freed_bytes == dry.freed_bytes
    assert sorted(p.name for p in (cfg.storage / "uploads").iterdir()) == [new["id"]]


def test_stored_files_are_readable_by_the_service_only(engine, cfg, tmp_path):
    upload = check(engine, cfg, make.caragana_zip(tmp_path, 2))
    folder = cfg.storage / "uploads" / upload["id"]

    def mode(p: Path) -> int:
        return stat.S_IMODE(p.stat().st_mode)

    for path in (cfg.home, cfg.storage, cfg.storage / "uploads", folder):
        assert mode(path) == 0o700, path
    for path in folder.iterdir():
        assert mode(path) == 0o600, path
