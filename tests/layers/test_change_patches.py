"""The change patches' workflow, enforced by the database; detection written as pending patches."""

import itertools
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from shapely.geometry import box

from gis.change import ChangePatch
from layers.audit import Who
from layers.change_patches import (
    STATUSES,
    TRANSITIONS,
    IllegalTransitionError,
    InvalidStepError,
    StepForbiddenError,
    change_patch_summary,
    from_database,
    insert_patches,
    step,
    steps,
)
from layers.columns import FeatureNotFoundError

ALLOWED = set(TRANSITIONS)
ILLEGAL = [(a, b) for a, b in itertools.product(STATUSES, STATUSES) if a != b and (a, b) not in ALLOWED]
#: The shortest way from pending to each status.
PATH = {"pending": [], "verified": ["verified"], "false_alarm": ["false_alarm"],
        "rectified": ["verified", "rectified"]}


@pytest.fixture
def village(conn):
    conn.execute(sa.text(
        "INSERT INTO villages (code, name, kind, geom) VALUES ('cp1', '测试嘎查', 'gacha', "
        "ST_Multi(ST_MakeEnvelope(107.0, 38.0, 107.1, 38.1, 4326))), ('cp2', '邻村', 'village', "
        "ST_Multi(ST_MakeEnvelope(107.1, 38.0, 107.2, 38.1, 4326)))"))
    return "cp1"


def _new(conn, code, x=107.01):
    return conn.scalar(sa.text(
        "INSERT INTO change_patches (code, village_code, kind, detected_on, status, geom) "
        "VALUES (:c, 'cp1', 'loss', '2025-06-01', 'pending', "
        "ST_Multi(ST_MakeEnvelope(:x, 38.01, :x + 0.001, 38.011, 4326))) RETURNING id"), {"c": code, "x": x})


def _to(conn, fid, status, note=None):
    with conn.begin_nested():
        conn.execute(sa.text("UPDATE change_patches SET status = :s, status_note = :n WHERE id = :id"),
                     {"s": status, "n": note, "id": fid})


def test_a_patch_is_born_pending_with_its_first_step(conn, village):
    fid = _new(conn, "T-1")
    conn.execute(sa.text("SELECT set_config('landeco.who', '', true)"))
    row = conn.execute(sa.text("SELECT status, status_by, status_at FROM change_patches WHERE id = :i"),
                       {"i": fid}).one()
    assert row.status == "pending" and row.status_by and row.status_at == _township_today()
    [first] = steps(conn, fid)
    assert first["from"] is None and first["to"] == "pending"


def _township_today() -> date:
    return datetime.now(ZoneInfo("Asia/Shanghai")).date()


def test_a_step_is_dated_by_the_townships_day_whatever_the_servers_zone(conn, village):
    # twenty hours behind Beijing: on most hours of a day its date is not the township's
    conn.execute(sa.text("SET LOCAL TimeZone = 'Etc/GMT+12'"))
    fid = _new(conn, "T-tz")
    _to(conn, fid, "verified")
    assert conn.scalar(sa.text("SELECT status_at FROM change_patches WHERE id = :i"), {"i": fid}) \
        == _township_today()


def test_a_patch_cannot_be_born_verified(conn, village):
    with pytest.raises(sa.exc.DBAPIError) as err:
        conn.execute(sa.text(
            "INSERT INTO change_patches (code, kind, detected_on, status, geom) VALUES ('T-x', 'gain', "
            "'2025-06-01', 'verified', ST_Multi(ST_MakeEnvelope(107.01, 38.01, 107.02, 38.02, 4326)))"))
    error = from_database(err.value)
    assert error is not None and error.requested == "verified" and error.allowed == ["pending"]


@pytest.mark.parametrize(("start", "target"), ILLEGAL)
def test_every_illegal_transition_is_refused_by_the_database(conn, village, start, target):
    fid = _new(conn, f"T-{start}-{target}")
    for s in PATH[start]:
        _to(conn, fid, s, "ok")
    with pytest.raises(sa.exc.DBAPIError) as err:
        _to(conn, fid, target, "sneaky")
    error = from_database(err.value)
    assert isinstance(error, IllegalTransitionError)
    assert error.current == start and error.requested == target
    assert sorted(error.allowed) == sorted(b for a, b in TRANSITIONS if a == start)
    assert conn.scalar(sa.text("SELECT status FROM change_patches WHERE id = :i"), {"i": fid}) == start


@pytest.mark.parametrize(("start", "target"), TRANSITIONS)
def test_every_allowed_transition_is_taken_and_recorded(conn, village, start, target):
    fid = _new(conn, f"T-ok-{start}-{target}")
    for s in PATH[start]:
        _to(conn, fid, s, "on the way")
    conn.execute(sa.text("SELECT set_config('landeco.who', 'psql-user', true)"))
    _to(conn, fid, target, "现场核查")
    last = steps(conn, fid)[-1]
    assert (last["from"], last["to"], last["note"], last["by"]) == (start, target, "现场核查", "psql-user")
    row = conn.execute(sa.text("SELECT status, status_note, status_by FROM change_patches WHERE id = :i"),
                       {"i": fid}).one()
    assert tuple(row) == (target, "现场核查", "psql-user")


def test_the_workflow_fields_change_only_with_a_step(conn, village):
    fid = _new(conn, "T-keep")
    _to(conn, fid, "verified", "seen")
    conn.execute(sa.text("UPDATE change_patches SET status_by = 'mallory', status_note = 'forged', "
                         "status_at = '2000-01-01', note = 'a plain note' WHERE id = :i"), {"i": fid})
    row = conn.execute(sa.text("SELECT status_by, status_note, status_at, note FROM change_patches "
                               "WHERE id = :i"), {"i": fid}).one()
    assert row.status_by != "mallory" and row.status_note == "seen" and row.status_at == _township_today()
    assert row.note == "a plain note"


def test_steps_are_append_only_and_go_with_their_patch(conn, village):
    fid = _new(conn, "T-log")
    for sql in ("UPDATE change_patch_steps SET note = 'x' WHERE patch_id = :i",
                "DELETE FROM change_patch_steps WHERE patch_id = :i"):
        with pytest.raises(sa.exc.DBAPIError), conn.begin_nested():
            conn.execute(sa.text(sql), {"i": fid})
    conn.execute(sa.text("DELETE FROM change_patches WHERE id = :i"), {"i": fid})
    left = conn.scalar(sa.text("SELECT count(*) FROM change_patch_steps WHERE patch_id = :i"), {"i": fid})
    assert left == 0


# --- through the service (its own transactions: a database of its own) -------------------------

@pytest.fixture(scope="module")
def own(new_database):
    from layers.store.database import engine_for
    from layers.store.migrate import upgrade

    with new_database("landeco_test_change_patches") as url:
        upgrade(url)
        engine = engine_for(url.render_as_string(hide_password=False))
        with engine.begin() as c:
            c.execute(sa.text(
                "INSERT INTO villages (code, name, kind, geom) VALUES ('cp1', '测试嘎查', 'gacha', "
                "ST_Multi(ST_MakeEnvelope(107.0, 38.0, 107.1, 38.1, 4326))), "
                "('cp2', '<b>邻村</b>', 'village', "
                "ST_Multi(ST_MakeEnvelope(107.1, 38.0, 107.2, 38.1, 4326)))"))
        yield engine
        engine.dispose()


def _patch(kind, west, south, east, north, mean=-0.3):
    from gis.area import geodesic_area_m2

    g = box(west, south, east, north)
    return ChangePatch(kind, g, mean, 10, geodesic_area_m2(g))


def test_detected_patches_are_pending_in_their_village_and_not_duplicated(own):
    found = [_patch("loss", 107.05, 38.05, 107.06, 38.06),      # inside cp1
             _patch("gain", 107.095, 38.02, 107.125, 38.03, 0.2)]  # mostly in cp2
    kwargs = dict(before_id=1, after_id=2, before_date=date(2020, 7, 1), after_date=date(2024, 7, 1),
                  threshold=0.15, who=Who(actor="detector"), detected_on=date(2024, 8, 1))
    with own.begin() as c:
        first = insert_patches(c, found, **kwargs)
    assert first["inserted"] == 2 and first["known"] == 0
    with own.begin() as c:
        again = insert_patches(c, found, **kwargs)
        rows = c.execute(sa.text("SELECT code, village_code, kind, status, status_by, area_mu "
                                 "FROM change_patches "
                                 "ORDER BY code")).mappings().all()
    assert again == {"inserted": 0, "known": 2, "area_mu": 0, "feature_ids": []}
    assert [(r["code"], r["village_code"], r["kind"], r["status"]) for r in rows] == [
        ("BH-2024-0001", "cp1", "loss", "pending"), ("BH-2024-0002", "cp2", "gain", "pending")]
    assert rows[0]["status_by"] == "detector"
    assert rows[0]["area_mu"] == pytest.approx(found[0].area_mu, rel=1e-6)


def test_step_records_who_when_note_and_refuses_the_rest(own):
    with own.begin() as c:
        fid = c.scalar(sa.text("SELECT id FROM change_patches WHERE code = 'BH-2024-0001'"))
    surveyor = Who(actor="wang", route="test")
    out = step(own, fid, status="verified", note="现场核实：开垦", who=surveyor,
               has=lambda r: r == "surveyor")
    assert out["status"] == "verified" and out["status_by"] == "wang"
    assert out["allowed"] == ["rectified", "false_alarm"]
    assert [s["to"] for s in out["steps"]] == ["pending", "verified"]
    assert out["steps"][-1]["by"] == "wang" and out["steps"][-1]["note"] == "现场核实：开垦"
    with pytest.raises(StepForbiddenError):  # a viewer
        step(own, fid, status="rectified", note="done", who=Who(actor="v"), has=lambda r: r == "viewer")
    with pytest.raises(InvalidStepError):  # a rectification says what was done
        step(own, fid, status="rectified", note="  ", who=surveyor)
    planner = Who(actor="li")
    out = step(own, fid, status="rectified", note="已恢复植被", who=planner, has=lambda r: r == "planner")
    assert out["status"] == "rectified" and out["allowed"] == []
    with pytest.raises(IllegalTransitionError) as err:
        step(own, fid, status="false_alarm", note="no", who=surveyor)
    assert err.value.current == "rectified" and err.value.allowed == []
    with pytest.raises(FeatureNotFoundError):
        step(own, 10**12, status="verified", note=None, who=surveyor)
    with own.begin() as c:
        audit = c.execute(sa.text("SELECT actor, detail FROM audit WHERE action = 'change_patch.step' "
                                  "ORDER BY id")).all()
    assert [(a, d["to"]) for a, d in audit] == [("wang", "verified"), ("li", "rectified")]


def test_summary_by_village_and_status(own):
    with own.connect() as c:
        summary = change_patch_summary(c, start=date(2024, 1, 1), end=date(2024, 12, 31))
        now = change_patch_summary(c, start=date(2024, 1, 1))
        later = change_patch_summary(c, start=date(2025, 1, 1))
    by = {(r["village_code"], r["status"]): r for r in summary["rows"]}
    # the rectification happened today, after the end of 2024: then it was pending still
    assert set(by) == {("cp1", "pending"), ("cp2", "pending")}
    by = {(r["village_code"], r["status"]): r for r in now["rows"]}
    assert set(by) == {("cp1", "rectified"), ("cp2", "pending")}
    assert now["found"]["count"] == 2
    assert now["totals"]["rectified"]["count"] == 1
    assert now["totals"]["rectified"]["area_mu"] == pytest.approx(by[("cp1", "rectified")]["area_mu"])
    assert now["villages"][0]["by_status"]["rectified"]["count"] == 1
    assert later["found"] == {"count": 0, "area_mu": 0}
