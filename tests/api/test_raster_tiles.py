"""Raster PNG tiles and legends over HTTP: colours, caching, errors, and the overlays on map pages."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import sqlalchemy as sa

from layers.demo import load_demo
from layers.rasters import add_raster
from layers.settings import Settings
from tests.conftest import client_for
from tests.raster_samples import CENTRE, lonlat_of, rgba, tile_pixel, write_raster

GREEN, BROWN = (0, 68, 27, 255), (140, 81, 10, 255)  # NDVI 0.9 and −0.2


@pytest.fixture(scope="module")
def township(new_database, tmp_path_factory):
    """The demo township with two NDVI rasters (2021, 2023) and a DEM, stored as the registry stores them."""
    home = tmp_path_factory.mktemp("home")
    folder = tmp_path_factory.mktemp("tifs")
    with new_database("landeco_test_rtiles") as url:
        load_demo(url)
        settings = Settings(database_url=url.render_as_string(hide_password=False), home=home)
        engine = sa.create_engine(settings.database_url)
        data = np.full((200, 200), -0.2, dtype="float32")
        data[:, :100] = 0.9
        data[:50, :] = -9999
        old = add_raster(engine, settings, write_raster(folder / "a.tif", data, nodata=-9999),
                         kind="ndvi", acquired="2021-07-15", source="test")
        flipped = write_raster(folder / "b.tif", np.flip(data, axis=1), nodata=-9999)
        new = add_raster(engine, settings, flipped, kind="ndvi", acquired="2023-07-15", source="test")
        dem = np.full((100, 100), 1200, dtype="int16")
        dem[:, :20], dem[:, 80:] = 1000, 1400
        dem_file = write_raster(folder / "dem.tif", dem, crs="EPSG:4545", nodata=-32768)
        elev = add_raster(engine, settings, dem_file, kind="dem", acquired="2020-01-01")
        engine.dispose()
        yield url, home, {"old": old, "new": new, "dem": elev}


@pytest.fixture(scope="module")
def client(township):
    url, home, _ = township
    with client_for(url, home, surveyor=False) as c:
        yield c


def _tile_url(raster_id, dx, dy, z=15, crs="EPSG:32648"):
    x, y, col, row = tile_pixel(*lonlat_of(crs, CENTRE, dx, dy), z)
    return f"/rasters/{raster_id}/tiles/WebMercatorQuad/{z}/{x}/{y}.png", (row, col)


def _colour(client, raster_id, dx, dy, **kw):
    url, (row, col) = _tile_url(raster_id, dx, dy, **kw)
    r = client.get(url)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    return tuple(int(v) for v in rgba(r.content)[row, col])


def test_tiles_show_each_raster_in_its_colours(client, township):
    ids = township[2]
    assert _colour(client, ids["old"].id, -500, -300) == GREEN  # 2021: green west, brown east
    assert _colour(client, ids["old"].id, 500, -300) == BROWN
    assert _colour(client, ids["new"].id, -500, -300) == BROWN  # 2023: the other way round
    assert _colour(client, ids["new"].id, 500, -300) == GREEN
    assert _colour(client, ids["old"].id, -500, 800)[3] == 0  # nodata: transparent
    # the DEM's ramp spans its own range: lowest green, highest near white
    assert _colour(client, ids["dem"].id, -450, 0, crs="EPSG:4545") == (26, 150, 65, 255)
    assert _colour(client, ids["dem"].id, 450, 0, crs="EPSG:4545") == (240, 240, 240, 255)


def test_a_tile_beside_the_raster_is_small_and_transparent(client, township):
    url, _ = _tile_url(township[2]["old"].id, 30_000, 0, z=14)
    r = client.get(url)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert len(r.content) < 400 and rgba(r.content)[..., 3].max() == 0


def test_caching_headers_and_etag(client, township):
    url, _ = _tile_url(township[2]["old"].id, 0, 0)
    r = client.get(url)
    assert r.headers["cache-control"] == "public, max-age=60"
    etag = r.headers["etag"]
    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and not again.content
    versioned = client.get(url + "?v=abc")
    assert versioned.headers["cache-control"] == "public, max-age=86400, immutable"
    assert versioned.headers["etag"] == etag
    other, _ = _tile_url(township[2]["new"].id, 0, 0)
    assert client.get(other).headers["etag"] != etag  # another raster, another tag


@pytest.mark.parametrize(("path", "status", "code"), [
    ("/rasters/999999/tiles/WebMercatorQuad/15/26137/12640.png", 404, "raster_not_found"),
    ("/rasters/abc/tiles/WebMercatorQuad/15/26137/12640.png", 404, "raster_not_found"),
    ("/rasters/{id}/tiles/WebMercatorQuad/15/99999/12640.png", 404, "tile_out_of_range"),
    ("/rasters/{id}/tiles/WebMercatorQuad/15/-1/12640.png", 404, "tile_out_of_range"),
    ("/rasters/{id}/tiles/WebMercatorQuad/x/1/1.png", 400, "invalid_tile"),
    ("/rasters/{id}/tiles/WebMercatorQuad/1e3/1/1.png", 400, "invalid_tile"),
    ("/rasters/{id}/tiles/WebMercatorQuad/99999999999999999999/1/1.png", 400, "invalid_tile"),
    ("/rasters/{id}/tiles/WebMercatorQuad/2/1/1.png", 404, "raster_zoom_out_of_range"),
    ("/rasters/{id}/tiles/WebMercatorQuad/23/1/1.png", 404, "raster_zoom_out_of_range"),
    ("/rasters/{id}/tiles/WorldCRS84Quad/15/26137/12640.png", 404, "unknown_tile_matrix_set"),
    ("/rasters/999999/legend", 404, "raster_not_found"),
])
def test_bad_addresses_are_problems_not_crashes(client, township, path, status, code):
    r = client.get(path.replace("{id}", str(township[2]["old"].id)))
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == code


def test_legend_json_in_both_languages(client, township):
    ids = township[2]
    zh = client.get(f"/rasters/{ids['old'].id}/legend").json()
    assert zh["title"] == "归一化植被指数 (NDVI)" and zh["acquired"] == "2021-07-15"
    assert (zh["min"], zh["max"]) == (-0.2, 0.9)
    assert zh["stops"][0] == {"value": -0.2, "color": "#8c510a"}
    assert zh["labels"][-1]["text"] == "0.9 茂密植被"
    en = client.get(f"/rasters/{ids['dem'].id}/legend?lang=en").json()
    assert en["unit"] == "m" and (en["min"], en["max"]) == (1000.0, 1400.0)
    assert [la["text"] for la in en["labels"]] == ["1,000 m", "1,200 m", "1,400 m"]


def test_a_private_township_hides_raster_tiles(township):
    url, home, ids = township
    with client_for(url, home, surveyor=False, public_read=False) as anon:
        r = anon.get(f"/rasters/{ids['old'].id}/legend")
        assert r.status_code == 401 and r.json()["code"] == "authentication_required"


def _raster_config(page: str) -> list[dict]:
    """The raster overlays a map page registers (their JSON config in the page's script)."""
    return [json.loads(m) for m in re.findall(r"var cfg = (\{.*?\});\n", page)]


def test_map_pages_offer_the_rasters_off_by_default(client, township):
    ids = township[2]
    page = client.get("/maps").text
    configs = {c["key"]: c for c in _raster_config(page)}
    assert set(configs) == {"raster_ndvi", "raster_dem"}
    ndvi = configs["raster_ndvi"]
    assert [d["acquired"] for d in ndvi["dates"]] == ["2021-07-15", "2023-07-15"]
    assert ndvi["dates"][ndvi["current"]]["id"] == ids["new"].id  # the newest up to today
    assert ndvi["dates"][0]["tiles_url"].startswith(
        f"http://localhost/rasters/{ids['old'].id}/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}.png?v=")
    name = re.search(r"var (raster_tiles_\w+) = ", page).group(1)
    assert f"{name}.addTo(" not in page  # off until chosen
    # on an earlier map date, the raster of then; ?raster= shows one
    older = {c["key"]: c for c in _raster_config(client.get("/maps?on=2022-01-01").text)}["raster_ndvi"]
    assert older["dates"][older["current"]]["acquired"] == "2021-07-15"
    chosen = client.get(f"/maps?raster={ids['old'].id}&lang=en").text
    cfg = {c["key"]: c for c in _raster_config(chosen)}["raster_ndvi"]
    assert cfg["dates"][cfg["current"]]["id"] == ids["old"].id and cfg["title"] == "Vegetation index (NDVI)"
    assert re.search(r"raster_tiles_\w+\.addTo\(", chosen)
    assert client.get("/maps?raster=999999").json()["code"] == "raster_not_found"


def test_low_zoom_raster_tiles_count_against_the_tile_rate(township):
    url, home, ids = township
    low, _ = _tile_url(ids["old"].id, 0, 0, z=8)
    high, _ = _tile_url(ids["old"].id, 0, 0, z=14)
    with client_for(url, home, surveyor=False, tile_rate_limit_per_minute=2) as limited:
        assert [limited.get(low).status_code for _ in range(3)] == [200, 200, 429]
        assert limited.get(low).json()["code"] == "rate_limited"
        assert limited.get(high).status_code == 200  # from zoom 10 on, tiles are cheap and unlimited


def test_a_village_map_offers_the_rasters_over_it_only(client, township):
    url, _, ids = township
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        near, far = conn.execute(sa.text(
            "SELECT (array_agg(code ORDER BY d))[1], (array_agg(code ORDER BY d DESC))[1] FROM ("
            "SELECT code, ST_Distance(geom, ST_SetSRID(ST_Point(:x, :y), 4326)) AS d FROM villages) v"),
            {"x": CENTRE[0], "y": CENTRE[1]}).one()
    engine.dispose()
    page = client.get(f"/maps/villages/{near}?raster={ids['dem'].id}").text
    here = {c["key"]: c for c in _raster_config(page)}
    assert set(here) == {"raster_ndvi", "raster_dem"}
    dem = here["raster_dem"]
    assert dem["dates"][dem["current"]]["legend"]["labels"][0]["text"] == "1,000 米"
    assert _raster_config(client.get(f"/maps/villages/{far}").text) == []
