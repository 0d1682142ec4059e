"""layers.audit: entries are appended in the caller's transaction, bounded, filtered; never changed."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from layers import audit
from layers.store.database import engine_for


@pytest.fixture(scope="module")
def engine(new_database) -> Iterator[sa.Engine]:
    with new_database("landeco_test_audit") as url:
        yield engine_for(url.render_as_string(hide_password=False))


def _record(engine: sa.Engine, **fields) -> int:
    with engine.begin() as conn:
        return audit.record(conn, **{"actor": "alice", "address": "10.0.0.7", "action": "upload.commit",
                                     **fields})


@pytest.mark.parametrize("statement", [
    "UPDATE audit SET actor = 'mallory' WHERE id = :id",
    "UPDATE audit SET counts = '{\"inserted\": 0}' WHERE id = :id",
    "DELETE FROM audit WHERE id = :id",
    "TRUNCATE audit",
])
def test_the_table_refuses_to_change_history(engine, statement):
    entry = _record(engine, layer="caragana_plots", counts={"inserted": 3})
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(sa.text(statement), {"id": entry})
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT actor, counts FROM audit WHERE id = :id"), {"id": entry}).one()
    assert row == ("alice", {"inserted": 3})


def test_the_owner_itself_cannot_delete(engine):
    """The application's role owns the table: only the trigger stands between it and history."""
    with engine.connect() as conn:
        owner = conn.scalar(sa.text("SELECT tableowner FROM pg_tables WHERE tablename = 'audit'"))
        assert owner == conn.scalar(sa.text("SELECT current_user"))
    entry = _record(engine)
    with pytest.raises(sa.exc.DBAPIError, match="DELETE refused"), engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit WHERE id = :id"), {"id": entry})


def test_a_change_rolled_back_leaves_no_entry(engine):
    actor = f"rb-{uuid.uuid4().hex[:8]}"
    with engine.connect() as conn:
        trans = conn.begin()
        audit.record(conn, actor=actor, address=None, action="upload.commit")
        trans.rollback()
        assert audit.count(conn, actor=actor) == 0


def test_feature_ids_are_bounded_and_fields_kept(engine):
    actor = f"big-{uuid.uuid4().hex[:8]}"
    _record(engine, actor=actor, address="not an address", layer="villages", upload_id="u1",
            counts={"inserted": 12_000, "updated": 0, "deleted": 5}, feature_ids=range(1, 12_001),
            detail={"file": "村界.zip"}, route="POST /uploads/u1/commit")
    with engine.connect() as conn:
        [entry] = audit.query(conn, actor=actor)
    assert len(entry["feature_ids"]) == audit.MAX_FEATURE_IDS == 10_000
    assert entry["feature_ids"][:3] == [1, 2, 3] and entry["feature_ids"][-1] == 10_000
    assert entry["counts"] == {"inserted": 12_000, "updated": 0, "deleted": 5}
    assert entry["address"] is None  # not an IP address: not stored as one
    assert (entry["layer"], entry["upload_id"], entry["detail"], entry["route"]) == (
        "villages", "u1", {"file": "村界.zip"}, "POST /uploads/u1/commit")


def test_query_filters_and_pages(engine):
    tag = uuid.uuid4().hex[:8]
    a, b = f"a-{tag}", f"b-{tag}"
    _record(engine, actor=a, action="upload.check", layer="caragana_plots")
    _record(engine, actor=a, action="upload.commit", layer="caragana_plots")
    _record(engine, actor=a, action="upload.commit", layer="villages")
    _record(engine, actor=b, action="user.add")
    with engine.connect() as conn:
        assert audit.count(conn, actor=a) == 3 and audit.count(conn, actor=b) == 1
        assert [e["layer"] for e in audit.query(conn, actor=a, action="upload.commit")] == [
            "villages", "caragana_plots"]  # newest first
        assert audit.count(conn, actor=a, action="upload") == 3  # a family
        assert audit.count(conn, actor=a, layer="villages") == 1
        page = audit.query(conn, actor=a, limit=2, offset=2)
        assert [e["action"] for e in page] == ["upload.check"]
        now = datetime.now(UTC)
        assert audit.count(conn, actor=a, since=now - timedelta(minutes=5)) == 3
        assert audit.count(conn, actor=a, until=now - timedelta(minutes=5)) == 0


def test_anonymous_is_a_null_actor(engine):
    tag = f"anon-{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        audit.record_as(conn, None, "login.failed", detail={"name": tag})
    with engine.connect() as conn:
        rows = [e for e in audit.query(conn, actor="", action="login.failed") if e["detail"] == {"name": tag}]
    assert len(rows) == 1 and rows[0]["actor"] is None


def test_action_must_look_like_one(engine):
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        audit.record(conn, actor="x", address=None, action="DROP TABLE audit")
