"""Change patches end to end: two rasters registered, detection as a job, the workflow, the page."""

from __future__ import annotations

import itertools
from datetime import date

import numpy as np
import pytest
import rasterio
import sqlalchemy as sa
from rasterio.transform import from_origin
from typer.testing import CliRunner

from layers import accounts
from layers.change_patches import STATUSES, TRANSITIONS
from layers.rasters import add_raster
from layers.settings import Settings
from layers.store.database import engine_for
from layers.store.migrate import upgrade
from tests.conftest import UNLIMITED, client_for, job_finished

#: UTM 48N inside the banner: 600 000 E, 4 200 000 N is about 106.14 E, 37.94 N.
ORIGIN = (600_000.0, 4_200_000.0)
PX = 30.0


def _lonlat(col: float, row: float) -> tuple[float, float]:
    from pyproj import Transformer

    t = Transformer.from_crs("EPSG:32648", "EPSG:4326", always_xy=True)
    return t.transform(ORIGIN[0] + col * PX, ORIGIN[1] - row * PX)


def _write(path, data, crs="EPSG:32648"):
    profile = dict(driver="GTiff", width=data.shape[1], height=data.shape[0], count=1, dtype="float32",
                   crs=crs, transform=from_origin(*ORIGIN, PX, PX), nodata=-9999.0)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data.astype("float32"), 1)
    return path


@pytest.fixture(scope="module")
def place(new_database, tmp_path_factory):
    """A database with two villages (west and east halves of a 200 × 200 px square) and four rasters."""
    home = tmp_path_factory.mktemp("home")
    with new_database("landeco_test_cp_api") as url:
        upgrade(url)
        engine = engine_for(url.render_as_string(hide_password=False))
        w, n = _lonlat(0, 0)
        m, _ = _lonlat(100, 0)
        e, s = _lonlat(200, 200)
        with engine.begin() as c:
            c.execute(sa.text(
                "INSERT INTO villages (code, name, kind, geom) VALUES "
                "('v-west', '西村', 'village', ST_Multi(ST_MakeEnvelope(:w, :s, :m, :n, 4326))), "
                "('v-east', '<script>alert(1)</script>东嘎查', 'gacha', "
                "ST_Multi(ST_MakeEnvelope(:m, :s, :e, :n, 4326)))"), {"w": w, "s": s, "m": m, "n": n, "e": e})
        folder = tmp_path_factory.mktemp("rasters")
        before = np.full((200, 200), 0.6)
        after = before.copy()
        after[20:30, 20:30] = 0.3      # 10 × 10 px in the west: 90 000 m² = 135 亩, loss
        after[150:152, 40:42] = 0.2    # 2 × 2 px: 5.4 亩, under 10 亩
        after[60:80, 150:160] = 0.95   # 20 × 10 px in the east: 180 000 m² = 270 亩, gain
        after[100:110, 100:110] = -9999  # no data: nothing found there
        settings = Settings(database_url=url.render_as_string(hide_password=False), home=home, **UNLIMITED)
        ids = {}
        for name, data, kind, when in (("before", before, "ndvi", "2020-07-15"),
                                       ("after", after, "ndvi", "2024-07-15"),
                                       ("dem", before, "dem", "2020-01-01")):
            raster = add_raster(engine, settings, _write(folder / f"{name}.tif", data), kind=kind,
                                acquired=when, who="test")
            ids[name] = raster.id
        for role in ("viewer", "planner"):
            accounts.add_user(engine=engine, name=f"cp-{role}", roles=[role], password="cp-password-123")
        tokens = {}
        for role in ("viewer", "planner"):
            _, token = accounts.create_token(engine=engine, name=f"cp-{role}")
            tokens[role] = {"Authorization": f"Bearer {token}"}
        yield url, home, ids, tokens, engine
        engine.dispose()


@pytest.fixture(scope="module")
def client(place):
    url, home, *_ = place
    with client_for(url, home, inprocess_worker=True) as c:
        yield c


@pytest.fixture(scope="module")
def detected(client, place):
    _, _, ids, _, engine = place
    r = client.post("/change_patches/detect", json={"before": ids["before"], "after": ids["after"],
                                                     "threshold": 0.15, "direction": "both", "min_mu": 10})
    assert r.status_code == 202, r.text
    job = job_finished(client, r.headers["location"])
    assert job["state"] == "succeeded", job
    with engine.connect() as c:
        rows = c.execute(sa.text(
            "SELECT id, code, village_code, kind, status, area_mu, mean_change, before_date, after_date "
            "FROM change_patches ORDER BY code")).mappings().all()
    return job, {r["kind"]: dict(r) for r in rows}


def test_detection_finds_the_known_patches(detected):
    job, found = detected
    assert job["result"]["inserted"] == 2 and job["result"]["known"] == 0
    loss, gain = found["loss"], found["gain"]
    assert loss["area_mu"] == pytest.approx(135, rel=3e-3) and loss["village_code"] == "v-west"
    assert gain["area_mu"] == pytest.approx(270, rel=3e-3) and gain["village_code"] == "v-east"
    assert loss["mean_change"] == pytest.approx(-0.3, abs=1e-5)
    assert (loss["before_date"], loss["after_date"]) == (date(2020, 7, 15), date(2024, 7, 15))
    assert (gain["code"], loss["code"]) == ("BH-2024-0001", "BH-2024-0002")  # the largest first
    assert {loss["status"], gain["status"]} == {"pending"}
    assert job["result"]["area_mu"] == pytest.approx(405, rel=3e-3)


def test_detection_again_on_the_same_pair_adds_nothing(client, place, detected):
    _, _, ids, _, engine = place
    r = client.post("/change_patches/detect", json={"before": ids["before"], "after": ids["after"],
                                                     "min_mu": 1})  # lower: the 5.4 亩 patch is new
    job = job_finished(client, r.headers["location"])
    assert (job["result"]["inserted"], job["result"]["known"]) == (1, 2)
    with engine.connect() as c:
        assert c.scalar(sa.text("SELECT count(*) FROM change_patches")) == 3


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"before": "1", "after": "x"}, 400, "invalid_detection"),
    ({"before": 1, "after": 2, "threshold": "NaN"}, 400, "invalid_detection"),
    ({"before": 1, "after": 2, "threshold": -1}, 400, "invalid_detection"),
    ({"before": 1, "after": 2, "direction": "up"}, 400, "invalid_detection"),
    ({"before": 1, "after": 2, "min_mu": 1e99}, 400, "invalid_detection"),
    ({"before": 1, "after": 2, "colour": "red"}, 400, "invalid_detection"),
    ({"before": 999999, "after": 1}, 404, "raster_not_found"),
    ([1, 2], 400, "invalid_body"),
])
def test_bad_detections_are_refused_before_queueing(client, body, status, code):
    r = client.post("/change_patches/detect", json=body)
    assert (r.status_code, r.json()["code"]) == (status, code), r.text
    assert r.headers["content-type"].startswith("application/problem+json")


def test_rasters_of_two_kinds_or_one_raster_twice_are_refused(client, place):
    _, _, ids, _, _ = place
    r = client.post("/change_patches/detect", json={"before": ids["dem"], "after": ids["after"]})
    assert r.status_code == 400 and r.json()["code"] == "raster_pair_mismatch"
    assert r.json()["reason"] == "kind_differs"
    r = client.post("/change_patches/detect", json={"before": ids["after"], "after": ids["after"]})
    assert r.json()["reason"] == "same_raster"


def test_detection_needs_a_surveyor(client, place):
    _, _, ids, tokens, _ = place
    r = client.post("/change_patches/detect", json={"before": ids["before"], "after": ids["after"]},
                    headers=tokens["viewer"])
    assert r.status_code == 403


# --- the workflow through the API --------------------------------------------------------------

def _new_patch(engine, code: str) -> int:
    w, n = _lonlat(5, 5)
    e, s = _lonlat(6, 6)
    with engine.begin() as c:
        return c.scalar(sa.text(
            "INSERT INTO change_patches (code, village_code, kind, detected_on, status, geom) VALUES "
            "(:code, 'v-west', 'loss', '2024-08-01', 'pending', "
            "ST_Multi(ST_MakeEnvelope(:w, :s, :e, :n, 4326))) "
            "RETURNING id"), {"code": code, "w": w, "s": s, "e": e, "n": n})


PATH = {"pending": [], "verified": ["verified"], "false_alarm": ["false_alarm"],
        "rectified": ["verified", "rectified"]}


def test_every_illegal_transition_is_409_naming_the_status_and_the_next_ones(client, place):
    _, _, _, _, engine = place
    for start, target in itertools.product(STATUSES, STATUSES):
        if start == target or (start, target) in TRANSITIONS:
            continue
        fid = _new_patch(engine, f"API-{start}-{target}")
        for s in PATH[start]:
            assert client.post(f"/collections/change_patches/items/{fid}/status",
                               json={"status": s, "note": "ok"}).status_code == 200
        r = client.post(f"/collections/change_patches/items/{fid}/status",
                        json={"status": target, "note": "x"})
        assert r.status_code == 409, (start, target, r.text)
        body = r.json()
        assert r.headers["content-type"].startswith("application/problem+json")
        assert body["code"] == "illegal_transition" and body["current_status"] == start
        assert body["allowed"] == [b for a, b in TRANSITIONS if a == start]
        assert "不能改为" in body["detail"] and body["title"] == "不允许的状态变更"  # Chinese by default
    english = client.post(f"/collections/change_patches/items/{fid}/status?lang=en",
                          json={"status": "pending"}).json()
    assert "cannot become Pending" in english["detail"]


def test_a_step_records_who_when_and_note_and_roles_hold(client, place):
    _, _, _, tokens, engine = place
    fid = _new_patch(engine, "API-steps")
    url = f"/collections/change_patches/items/{fid}/status"
    refused = client.post(url, json={"status": "verified"}, headers=tokens["viewer"])
    assert refused.status_code == 403 and refused.json()["code"] == "step_forbidden"
    assert client.post(url, json={"status": "verified"}, headers=tokens["planner"]).status_code == 403
    r = client.post(url, json={"status": "verified", "note": "现场核实：开垦 <b>3</b> 亩"})
    assert r.status_code == 200 and r.json()["status"] == "verified"
    assert client.post(url, json={"status": "rectified"}).json()["code"] == "invalid_step"  # no note
    r = client.post(url, json={"status": "rectified", "note": "已补植"}, headers=tokens["planner"])
    assert r.status_code == 200 and r.json()["allowed"] == []
    steps = client.get(f"/collections/change_patches/items/{fid}/steps").json()["steps"]
    assert [(s["from"], s["to"]) for s in steps] == [(None, "pending"), ("pending", "verified"),
                                                     ("verified", "rectified")]
    assert [s["by"] for s in steps[1:]] == ["test-surveyor", "cp-planner"]
    assert steps[1]["note"] == "现场核实：开垦 <b>3</b> 亩" and steps[2]["at"] >= steps[1]["at"]
    item = client.get(f"/collections/change_patches/items/{fid}").json()
    assert item["properties"]["status"] == "rectified" and item["properties"]["status_by"] == "cp-planner"


@pytest.mark.parametrize("body", [{}, {"status": "done"}, {"status": "verified", "note": 5},
                                  {"status": "verified", "extra": 1},
                                  {"status": "verified", "note": "x" * 2001}, "verified", None])
def test_bad_steps_are_400(client, place, body):
    _, _, _, _, engine = place
    fid = _new_patch(engine, f"API-bad-{abs(hash(str(body)))}")
    r = client.post(f"/collections/change_patches/items/{fid}/status", json=body)
    assert r.status_code == 400 and r.json()["code"] in ("invalid_step", "invalid_body"), r.text


def test_unknown_patches_are_404(client):
    for fid in ("999999999", "0", "abc", "-1"):
        r = client.post(f"/collections/change_patches/items/{fid}/status", json={"status": "verified"})
        assert r.status_code == 404, fid
        assert client.get(f"/collections/change_patches/items/{fid}/steps").status_code == 404


def test_edits_cannot_change_the_status(client, place):
    _, _, _, _, engine = place
    fid = _new_patch(engine, "API-edit")
    got = client.get(f"/collections/change_patches/items/{fid}")
    etag = got.headers["etag"]
    r = client.patch(f"/collections/change_patches/items/{fid}",
                     json={"properties": {"status": "rectified"}},
                     headers={"If-Match": etag, "Content-Type": "application/merge-patch+json"})
    assert r.status_code == 409 and r.json()["code"] == "workflow_field" and r.json()["fields"] == ["status"]
    r = client.patch(f"/collections/change_patches/items/{fid}", json={"properties": {"note": "看过了"}},
                     headers={"If-Match": etag, "Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200, r.text
    assert r.json()["properties"]["status"] == "pending" and r.json()["properties"]["note"] == "看过了"
    feature = {"type": "Feature", "geometry": got.json()["geometry"],
               "properties": {"code": "API-new", "kind": "gain", "detected_on": "2024-08-02",
                              "status": "verified"}}
    r = client.post("/collections/change_patches/items", json=feature)
    assert r.status_code == 409 and r.json()["code"] == "workflow_field"
    del feature["properties"]["status"]
    r = client.post("/collections/change_patches/items", json=feature)
    assert r.status_code == 201, r.text
    assert r.json()["properties"]["status"] == "pending"


# --- the page ------------------------------------------------------------------------------------

def test_the_page_counts_by_village_and_status(client, detected):
    page = client.get("/change_patches?f=html")
    assert page.status_code == 200 and "变化图斑" in page.text
    # a surveyor may verify pending patches: the step form offers it, with the form's token field
    assert '<option value="verified">已核实</option>' in page.text and 'name="csrf_token"' in page.text
    summary = client.get("/change_patches?f=json").json()["summary"]
    west = next(v for v in summary["villages"] if v["village_code"] == "v-west")
    import re

    row = re.search(r'<tr data-village="v-east">(.*?)</tr>', page.text, re.S).group(1)
    east = next(v for v in summary["villages"] if v["village_code"] == "v-east")
    assert re.search(r'data-status="found">(\d+)<', row).group(1) == str(east["found"]["count"])
    assert f'{east["found"]["area_mu"]:.2f}' in row
    total = re.search(r'<tr id="total">(.*?)</tr>', page.text, re.S).group(1)
    assert re.search(r'data-status="found">(\d+)<', total).group(1) == str(summary["found"]["count"])
    assert west["found"]["count"] >= 1  # the detected loss (and patches the other tests added)
    assert summary["found"]["count"] == sum(summary["totals"][s]["count"] for s in STATUSES)


def test_the_page_escapes_hostile_names_and_notes(client, place, detected):
    _, _, _, _, engine = place
    fid = _new_patch(engine, "API-xss")
    client.post(f"/collections/change_patches/items/{fid}/status",
                json={"status": "verified",
                      "note": "<script>alert('x')</script><img src=x onerror=alert(1)>"})
    page = client.get("/change_patches?f=html&status=verified")
    assert page.status_code == 200
    assert "<script>alert(" not in page.text and "<img src=x" not in page.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in page.text  # the note, shown as text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;东嘎查" in page.text  # the village's name too


def test_visitors_see_the_figures_but_no_step_form(place, detected):
    url, home, *_ = place
    with client_for(url, home, surveyor=False) as visitor:
        page = visitor.get("/change_patches?f=html")
    assert page.status_code == 200 and 'id="summary"' in page.text
    assert 'class="step"' not in page.text


def test_the_page_in_english_and_with_filters(client, detected):
    page = client.get("/change_patches?f=html&lang=en&status=pending&start=2024-01-01&end=2024-12-31")
    assert page.status_code == 200 and "Change patches" in page.text and "Pending" in page.text
    assert client.get("/change_patches?start=2024-02-30").status_code == 400
    assert client.get("/change_patches?end=9999-12-31&f=json").json()["summary"]["found"]["count"] >= 2
    assert client.get("/change_patches?status=done").status_code == 400
    assert client.get("/change_patches?start=2025-01-01&end=2024-01-01").status_code == 400


def test_the_step_form_of_the_page(client, place):
    _, _, _, _, engine = place
    fid = _new_patch(engine, "API-form")
    r = client.post(f"/change_patches/{fid}/status/form", data={"status": "false_alarm", "note": "阴影"},
                    follow_redirects=False)
    assert r.status_code == 303 and "/change_patches?done=API-form" in r.headers["location"]
    with engine.connect() as c:
        status = c.scalar(sa.text("SELECT status FROM change_patches WHERE id = :i"), {"i": fid})
    assert status == "false_alarm"
    r = client.post(f"/change_patches/{fid}/status/form", data={"status": "verified", "note": "x"})
    assert r.status_code == 409 and r.json()["code"] == "illegal_transition"


def test_the_command_line_detects_with_a_bar(place, monkeypatch):
    from api.cli import app

    url, _, ids, _, _ = place
    monkeypatch.setenv("LANDECO_DATABASE_URL", url.render_as_string(hide_password=False))
    result = CliRunner().invoke(app, ["changes", "detect", str(ids["before"]), str(ids["after"]),
                                      "--threshold", "0.15", "--min-mu", "5"])
    assert result.exit_code == 0, result.output
    assert "0 new change patches" in result.output and "already known" in result.output
    bad = CliRunner().invoke(app, ["changes", "detect", str(ids["dem"]), str(ids["after"])])
    assert bad.exit_code == 1 and "raster_pair_mismatch" in bad.output
    summary = CliRunner().invoke(app, ["changes", "summary", "--start", "2024-01-01"])
    assert summary.exit_code == 0 and '"found"' in summary.output


def test_an_upload_cannot_bring_patches_in_another_status(client):
    import json

    w, n = _lonlat(180, 180)
    e, s = _lonlat(185, 185)
    ring = [[w, s], [e, s], [e, n], [w, n], [w, s]]
    fc = {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {
        "code": "UP-1", "kind": "loss", "detected_on": "2024-08-01", "status": "rectified"},
        "geometry": {"type": "Polygon", "coordinates": [ring]}}]}
    checked = client.post("/uploads", data={"layer": "change_patches"},
                          files={"file": ("patches.geojson", json.dumps(fc).encode())}).json()
    # the check says so, on the feature and its field, before anything is committed
    [found] = [p for p in checked["report"]["problems"] if p["code"] == "workflow_step_needed"]
    assert found["index"] == 0 and found["field"] == "status"
    assert found["message"] == "状态只能按流程逐步变更：此处应为「待核查」，文件中为「已整改」"
    r = client.post(f"/uploads/{checked['id']}/commit")
    assert r.status_code >= 400
    assert client.get("/collections/change_patches/items", params={"code": "UP-1"}).json()["features"] == []
