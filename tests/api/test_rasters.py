"""Rasters over HTTP: POST /rasters (201, or 202 and a job), GET /rasters, GET /rasters/{id}, the form.

Hostile files and values are refused with problem+json and a stable code, and leave neither a
row nor a file behind.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from layers.store.database import engine_for
from layers.zonal import run_zonal
from tests.conftest import client_for, job_finished
from tests.layers.test_rasters import _hostile, ndvi_file


@pytest.fixture
def raster_db(new_database):
    with new_database("landeco_test_rasters_api") as url:
        yield url


def _rows(url) -> int:
    with engine_for(url.render_as_string(hide_password=False)).connect() as c:
        return c.scalar(sa.text("SELECT count(*) FROM rasters"))


def _files(home: Path) -> list[Path]:
    storage = home / "storage"
    return sorted(p for d in ("rasters", "rasters-incoming") if (storage / d).exists()
                  for p in (storage / d).iterdir())


def _post(client, path: Path, name: str | None = None, **data):
    with open(path, "rb") as fh:
        return client.post("/rasters", files={"file": (name or path.name, fh, "image/tiff")},
                           data={"kind": "ndvi", "acquired": "2022-07-15", **data})


def test_add_then_read_it_back(raster_db, tmp_path):
    home = tmp_path / "home"
    with client_for(raster_db, home) as client:
        r = _post(client, ndvi_file(tmp_path), source="Landsat 8", band_meaning="NDVI")
        assert r.status_code == 201, r.text
        body = r.json()
        assert r.headers["location"].endswith(f"/rasters/{body['id']}")
        assert (body["kind"], body["acquired"], body["source"], body["band_meaning"], body["name"]) == (
            "ndvi", "2022-07-15", "Landsat 8", "NDVI", "ndvi.tif")
        assert body["footprint"]["type"] == "MultiPolygon" and "uri" not in body
        assert body["kind_label"] == "归一化植被指数 (NDVI)"

        one = client.get(r.headers["location"])
        assert one.status_code == 200 and one.json()["id"] == body["id"]
        assert {link["rel"] for link in one.json()["links"]} == {"self", "alternate", "collection"}
        listed = client.get("/rasters").json()["rasters"]
        assert [x["id"] for x in listed] == [body["id"]]
        assert client.get("/rasters", params={"kind": "fvc"}).json()["rasters"] == []

        page = client.get("/rasters", params={"f": "html"})
        assert page.status_code == 200 and "栅格数据" in page.text and "2022-07-15" in page.text
        en = client.get(f"/rasters/{body['id']}", params={"f": "html", "lang": "en"})
        assert en.status_code == 200 and "Vegetation index (NDVI)" in en.text and "footprint-map" in en.text
    assert _rows(raster_db) == 1 and [p.parent.name for p in _files(home)] == ["rasters"]


def test_anyone_reads_but_only_a_surveyor_adds(raster_db, tmp_path):
    with client_for(raster_db, tmp_path / "home", surveyor=False) as anonymous:
        assert anonymous.get("/rasters").status_code == 200
        r = _post(anonymous, ndvi_file(tmp_path))
        assert r.status_code == 401 and r.json()["code"] == "authentication_required"
    assert _rows(raster_db) == 0


def test_hostile_files_are_refused_and_leave_nothing(raster_db, tmp_path):
    home = tmp_path / "home"
    with client_for(raster_db, home) as client:
        for code, path in _hostile(tmp_path).items():
            r = _post(client, path)
            assert 400 <= r.status_code < 500, (code, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["code"] == code, (code, r.json())
        # the form explains the refusal on the page, in Chinese
        with open(_hostile(tmp_path)["raster_outside_township"], "rb") as fh:
            page = client.post("/rasters/form", files={"file": ("far.tif", fh)},
                               data={"kind": "ndvi", "acquired": "2022-07-15"})
        assert page.status_code == 422 and "raster_outside_township" in page.text
        assert "栅格被拒绝" in page.text
    assert _rows(raster_db) == 0 and _files(home) == []


def test_a_file_over_the_size_limit_is_refused(raster_db, tmp_path):
    home = tmp_path / "home"
    with client_for(raster_db, home, raster_max_bytes=10_000) as client:
        r = _post(client, ndvi_file(tmp_path, shape=(200, 200)))
        assert r.status_code == 413 and r.json()["code"] in ("too_large", "raster_too_large")
    assert _rows(raster_db) == 0 and _files(home) == []


@pytest.mark.parametrize(("data", "parameter"), [
    ({"acquired": "2022-02-30"}, "acquired"),
    ({"acquired": "NaN"}, "acquired"),
    ({"acquired": "0001-01-01"}, "acquired"),
    ({"acquired": ""}, "acquired"),
    ({"kind": "lidar"}, "kind"),
    ({"kind": "NaN"}, "kind"),
    ({"source": "a\x00b"}, "source"),
    ({"band_meaning": "x" * 5000}, "band_meaning"),
])
def test_wrong_values_are_refused_before_the_file_is_read(raster_db, tmp_path, data, parameter):
    home = tmp_path / "home"
    with client_for(raster_db, home) as client:
        r = _post(client, ndvi_file(tmp_path), **data)
        assert r.status_code == 400, r.text
        assert r.json()["code"] in ("invalid_raster_parameter", "invalid_text", "invalid_parameter")
    assert _rows(raster_db) == 0 and _files(home) == []


def test_a_path_in_the_file_name_goes_nowhere(raster_db, tmp_path):
    home = tmp_path / "home"
    with client_for(raster_db, home) as client:
        r = _post(client, ndvi_file(tmp_path), name="../../../../etc/cron.d/evil.tif")
        assert r.status_code == 201, r.text
        assert r.json()["name"] == "evil.tif"
    stored = _files(home)
    assert len(stored) == 1 and stored[0].parent == home / "storage" / "rasters"


def test_unknown_ids_and_kinds(raster_db, tmp_path):
    with client_for(raster_db, tmp_path / "home") as client:
        for bad in ("999999", "abc", "1.5", "-1", "0", "9" * 30, "NaN"):
            r = client.get(f"/rasters/{bad}")
            assert r.status_code == 404 and r.json()["code"] == "raster_not_found", bad
        r = client.get("/rasters", params={"kind": "ndvi' OR 1=1 --"})
        assert r.status_code == 400 and r.json()["code"] == "invalid_raster_parameter"


def test_the_form_adds_and_shows_the_raster(raster_db, tmp_path):
    with client_for(raster_db, tmp_path / "home") as client:
        assert "添加栅格" in client.get("/rasters/new").text
        assert "/rasters/new" in client.get("/uploads/new").text  # the upload page links the form
        with open(ndvi_file(tmp_path), "rb") as fh:
            r = client.post("/rasters/form", files={"file": ("ndvi.tif", fh)},
                            data={"kind": "fvc", "acquired": "2021-07-15", "source": "<script>x</script>"},
                            follow_redirects=False)
        assert r.status_code == 303 and "/rasters/" in r.headers["location"]
        page = client.get(r.headers["location"])
        assert page.status_code == 200 and "植被覆盖度" in page.text
        assert "<script>x</script>" not in page.text and "&lt;script&gt;x&lt;/script&gt;" in page.text


def test_a_large_raster_is_added_by_a_job(raster_db, tmp_path):
    home = tmp_path / "home"
    with client_for(raster_db, home, inprocess_worker=True, raster_job_bytes=0) as client:
        r = _post(client, ndvi_file(tmp_path), kind="dem")
        assert r.status_code == 202, r.text
        job = job_finished(client, r.headers["location"])
        assert job["state"] == "succeeded", job
        assert job["result"]["kind"] == "dem" and job["links"]["page"].endswith("?f=html")
        raster = client.get(f"/rasters/{job['result']['raster_id']}").json()
        assert raster["created_by"] == "test-surveyor"
        # a header that cannot be right is refused at once, not by the job
        bad = _post(client, _hostile(tmp_path)["raster_dimensions_too_large"])
        assert bad.status_code == 413 and bad.json()["code"] == "raster_dimensions_too_large"
        # a truncated file is found by the job, which says why; nothing is kept
        cut = _post(client, _hostile(tmp_path)["raster_corrupt"])
        if cut.status_code == 202:
            failed = job_finished(client, cut.headers["location"])
            assert failed["state"] == "failed" and failed["error"]["code"] == "raster_corrupt"
        else:
            assert cut.json()["code"] == "raster_corrupt"
    assert _rows(raster_db) == 1
    assert [p.parent.name for p in _files(home)] == ["rasters"]


def test_an_administrator_removes_a_raster_and_what_was_computed_from_it(raster_db, tmp_path):
    """DELETE /rasters/{id}: an administrator only; the file, the row and its zonal statistics go."""
    from layers import accounts

    engine = engine_for(raster_db.render_as_string(hide_password=False))
    home = tmp_path / "home"
    with client_for(raster_db, home) as surveyor:
        added = _post(surveyor, ndvi_file(tmp_path, value=0.3))
        assert added.status_code == 201, added.text
        rid = added.json()["id"]
        with engine.begin() as conn:  # a plot over the raster, and its statistics
            conn.execute(sa.text(
                "INSERT INTO caragana_plots (code, planted_year, method, geom) "
                "SELECT 'Z-1', 2019, 'enclosure', "
                "ST_Multi(ST_Buffer(ST_PointOnSurface(footprint)::geography, 60)::geometry) FROM rasters"))
        assert run_zonal(engine, raster_id=rid, layer="caragana_plots")["features_with_values"] == 1
        refused = surveyor.delete(f"/rasters/{rid}")
        assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    accounts.add_user(engine=engine, name="raster-admin", roles=["admin"], password="raster-admin-pw")
    token = accounts.create_token(engine=engine, name="raster-admin")[1]
    with client_for(raster_db, home, surveyor=False) as admin:
        admin.headers["Authorization"] = f"Bearer {token}"
        for hostile in ("0", "-1", "1e3", "x", "99999999999999999999"):
            assert admin.delete(f"/rasters/{hostile}").status_code in (400, 404)
        gone = admin.delete(f"/rasters/{rid}")
        assert gone.status_code == 204, gone.text
        again = admin.get(f"/rasters/{rid}")
        assert again.status_code == 404 and again.json()["code"] == "raster_not_found"
        assert admin.delete(f"/rasters/{rid}").status_code == 404
    assert _rows(raster_db) == 0 and [p for p in _files(home) if p.parent.name == "rasters"] == []
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM zonal_stats")) == 0
        who = conn.scalar(sa.text("SELECT actor FROM audit WHERE action = 'raster.delete'"))
        assert who == "raster-admin"
