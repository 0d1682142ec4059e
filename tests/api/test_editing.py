"""Editing one feature over HTTP (OGC API – Features Part 4): checked as uploads are, never blind."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from layers.demo import load_demo
from layers.registry import LAYERS
from layers.store.database import engine_for
from tests.conftest import client_for

PLOTS = "/collections/caragana_plots/items"


@pytest.fixture(scope="module")
def edit_url(new_database) -> Iterator[URL]:
    with new_database("landeco_test_editing") as url:
        load_demo(url)
        yield url


@pytest.fixture(scope="module")
def engine(edit_url):
    return engine_for(edit_url.render_as_string(hide_password=False))


@pytest.fixture(scope="module")
def client(edit_url: URL, tmp_path_factory):
    with client_for(edit_url, tmp_path_factory.mktemp("home")) as c:
        yield c


def plot_ids(engine, n: int = 1, offset: int = 0) -> list[int]:
    with engine.connect() as conn:
        return list(conn.scalars(sa.text("SELECT id FROM caragana_plots ORDER BY id LIMIT :n OFFSET :o"),
                                 {"n": n, "o": offset}))


def row(engine, fid: int) -> dict | None:
    with engine.connect() as conn:
        found = conn.execute(sa.text("SELECT code, method, seedlings, note, area_mu, village_code, "
                                     "ST_AsGeoJSON(geom) AS g FROM caragana_plots WHERE id = :id"),
                             {"id": fid}).mappings().first()
    return dict(found) if found else None


def history_count(engine, fid: int) -> int:
    with engine.connect() as conn:
        return conn.scalar(sa.text("SELECT count(*) FROM caragana_plots_history WHERE feature_id = :id"),
                           {"id": fid})


def get(client, fid: int) -> tuple[dict, str]:
    r = client.get(f"{PLOTS}/{fid}")
    assert r.status_code == 200, r.text
    return r.json(), r.headers["etag"]


def free_square(engine, metres: float = 30) -> tuple[dict, str]:
    """A small polygon inside a village that touches no caragana plot, and that village's code."""
    with engine.connect() as conn:
        found = conn.execute(sa.text(
            "WITH c AS (SELECT v.code, ST_Buffer(ST_PointOnSurface(v.geom)::geography, :m, 4)::geometry AS g "
            "FROM villages v) SELECT code, ST_AsGeoJSON(g) FROM c WHERE NOT EXISTS "
            "(SELECT 1 FROM caragana_plots p WHERE ST_Intersects(p.geom, c.g)) ORDER BY code LIMIT 1"),
            {"m": metres}).one()
    return json.loads(found[1]), found[0]


def test_conformance_names_part_4(client):
    classes = client.get("/conformance", params={"f": "json"}).json()["conformsTo"]
    for c in ("create-replace-delete", "update"):
        assert f"http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/{c}" in classes


def test_a_feature_has_a_strong_etag_that_changes_with_it(client, engine):
    fid = plot_ids(engine)[0]
    _, etag = get(client, fid)
    assert etag.startswith('"') and not etag.startswith("W/")
    assert get(client, fid)[1] == etag  # the same version, the same ETag
    assert client.get(f"{PLOTS}/{fid}", headers={"If-None-Match": etag}).status_code == 304
    with engine.begin() as conn:  # a change made elsewhere (an upload, psql) changes it too
        conn.execute(sa.text("UPDATE caragana_plots SET note = 'changed in psql' WHERE id = :id"),
                     {"id": fid})
    assert get(client, fid)[1] != etag


def test_patch_changes_attributes_and_a_stale_etag_is_412(client, engine):
    fid = plot_ids(engine, offset=1)[0]
    before = row(engine, fid)
    _, etag = get(client, fid)
    r = client.patch(f"{PLOTS}/{fid}", json={"properties": {"seedlings": 4321, "note": "补植"}},
                     headers={"If-Match": etag, "Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200, r.text
    assert r.json()["properties"]["seedlings"] == 4321 and r.headers["etag"] != etag
    after = row(engine, fid)
    assert (after["seedlings"], after["note"], after["method"]) == (4321, "补植", before["method"])
    assert after["area_mu"] == pytest.approx(before["area_mu"])
    stale = client.patch(f"{PLOTS}/{fid}", json={"properties": {"seedlings": 1}}, headers={"If-Match": etag})
    assert stale.status_code == 412 and stale.json()["code"] == "precondition_failed"
    assert stale.json()["current_etag"] == r.headers["etag"]
    assert row(engine, fid)["seedlings"] == 4321
    missing = client.patch(f"{PLOTS}/{fid}", json={"properties": {"seedlings": 1}})
    assert missing.status_code == 428 and missing.json()["code"] == "precondition_required"
    # null empties a property (RFC 7396)
    cleared = client.patch(f"{PLOTS}/{fid}", json={"properties": {"note": None}},
                           headers={"If-Match": r.headers["etag"]})
    assert cleared.status_code == 200 and row(engine, fid)["note"] is None


def test_put_reshapes_recomputes_the_area_and_lands_in_versions_and_audit(client, engine):
    fid = plot_ids(engine, offset=2)[0]
    feature, etag = get(client, fid)
    before = row(engine, fid)
    ring = feature["geometry"]["coordinates"][0][0]
    # move the first vertex (and the ring's closing copy) about 30 m east
    moved = [[ring[0][0] + 0.0003, ring[0][1]], *ring[1:-1], [ring[0][0] + 0.0003, ring[0][1]]]
    feature["geometry"]["coordinates"][0][0] = moved
    feature["properties"]["method"] = "restoration" if before["method"] != "restoration" else "enclosure"
    r = client.put(f"{PLOTS}/{fid}", content=json.dumps(feature),
                   headers={"If-Match": etag, "Content-Type": "application/geo+json"})
    assert r.status_code == 200, r.text
    after = row(engine, fid)
    assert after["method"] == feature["properties"]["method"] and after["code"] == before["code"]
    assert after["area_mu"] != pytest.approx(before["area_mu"], abs=1e-6)  # the database's new area
    assert r.json()["properties"]["area_mu"] == pytest.approx(after["area_mu"], abs=1e-4)
    versions = client.get(f"{PLOTS}/{fid}/versions").json()["versions"]
    last = versions[-1]
    assert last["current"] and last["by"] == "test-surveyor" and last["edit_id"].startswith("edit:")
    assert last["changes"]["attributes"]["method"] == {"from": before["method"], "to": after["method"]}
    assert last["changes"]["moved_m"] > 5
    with engine.connect() as conn:
        entry = conn.execute(sa.text("SELECT actor, action, layer, feature_ids, detail FROM audit WHERE "
                                     "action = 'feature.edit' ORDER BY id DESC LIMIT 1")).mappings().one()
    assert (entry["actor"], entry["layer"]) == ("test-surveyor", "caragana_plots")
    assert entry["feature_ids"] == [fid]
    assert entry["detail"]["operation"] == "replace" and entry["detail"]["edit_id"] == last["edit_id"]


def test_a_refused_edit_lists_the_upload_checks_problems_and_writes_nothing(client, engine):
    fid = plot_ids(engine, offset=3)[0]
    before, versions = row(engine, fid), history_count(engine, fid)
    _, etag = get(client, fid)
    r = client.patch(f"{PLOTS}/{fid}", json={"properties": {"method": "bulldozed", "planted_year": 1800}},
                     headers={"If-Match": etag})
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["code"] == "edit_refused"
    found = {(p["code"], p["field"]) for p in body["problems"]}
    assert {("value_not_allowed", "method"), ("value_out_of_range", "planted_year")} <= found
    assert all(p["message_zh"] and p["message"] for p in body["problems"])
    village = client.patch(f"{PLOTS}/{fid}", json={"properties": {"village_code": "999"}},
                           headers={"If-Match": etag})
    assert village.status_code == 422
    assert [(p["code"], p["message_zh"]) for p in village.json()["problems"]] == [
        ("village_unknown", "没有这个嘎查村代码")]
    assert row(engine, fid) == before and history_count(engine, fid) == versions
    assert get(client, fid)[1] == etag


def test_overlaps_and_taken_codes_are_refused_as_in_uploads(client, engine):
    a, b = plot_ids(engine, 2, offset=4)
    feature, etag = get(client, a)
    other, _ = get(client, b)
    over = client.put(f"{PLOTS}/{a}", json={**feature, "geometry": other["geometry"]},
                      headers={"If-Match": etag})
    assert over.status_code == 422
    assert "overlap_existing" in {p["code"] for p in over.json()["problems"]}
    taken = client.patch(f"{PLOTS}/{a}", json={"properties": {"code": other["properties"]["code"]}},
                         headers={"If-Match": etag})
    assert taken.status_code == 422 and "code_exists" in {p["code"] for p in taken.json()["problems"]}
    assert row(engine, b)["code"] == other["properties"]["code"] and get(client, a)[1] == etag
    # its own code and shape are no overlap with itself: a PUT of the feature as it is passes
    same = client.put(f"{PLOTS}/{a}", json=feature, headers={"If-Match": etag})
    assert same.status_code == 200, same.text


def test_post_creates_with_location_and_delete_needs_the_etag(client, engine):
    square, village = free_square(engine)
    feature = {"type": "Feature", "geometry": square,
               "properties": {"code": "EDIT-NEW-1", "village_code": village, "planted_year": 2025,
                              "method": "划区围封", "area_mu": 99999}}
    r = client.post(PLOTS, json=feature)
    assert r.status_code == 201, r.text
    location = r.headers["location"]
    fid = int(location.rsplit("/", 1)[1])
    got = client.get(location)
    assert got.status_code == 200 and got.headers["etag"] == r.headers["etag"]
    props = got.json()["properties"]
    # the choice's Chinese label is stored as its code; the area is the database's, not the body's
    assert props["method"] == "enclosure" and 3.5 < props["area_mu"] < 4.5
    again = client.post(PLOTS, json=feature)
    assert again.status_code == 422 and "code_exists" in {p["code"] for p in again.json()["problems"]}
    assert client.delete(f"{PLOTS}/{fid}").status_code == 428
    assert client.delete(f"{PLOTS}/{fid}", headers={"If-Match": '"stale"'}).status_code == 412
    gone = client.delete(f"{PLOTS}/{fid}", headers={"If-Match": r.headers["etag"]})
    assert gone.status_code == 204 and row(engine, fid) is None
    assert client.get(location).status_code == 404
    versions = client.get(f"{PLOTS}/{fid}/versions").json()
    assert versions["exists"] is False and versions["versions"][-1]["ended_by"] == "delete"


@pytest.mark.parametrize(("body", "status", "code"), [
    ('{"type": "Feature", "properties": {"seedlings": NaN}, "geometry": null}', 400, None),
    ('{"type": "Feature", "properties": {"seedlings": Infinity}}', 400, None),
    ('{"type": "Feature", "properties": {"hacker": 1}}', 400, "invalid_feature"),
    ('{"type": "FeatureCollection", "features": []}', 400, "invalid_feature"),
    ('[1, 2]', 400, "invalid_feature"),
    (b'{"type": "Feature", "properties": {"note": "\xff\xfe"}}', 400, "invalid_feature"),
    ('{"type": "Feature", "properties": {"note": "a\u0000b"}}', 400, None),
    ('{"type": "Feature", "properties": {"seedlings": 99999999999999999999999}}', 400, None),
    ('{"type": "Feature", "properties": {"planted_year": 3000000000}}', 422, None),
    ('{"type": "Feature", "properties": {"inspected_on": "2023-02-30"}}', 422, None),
    ('{"type": "Feature", "properties": {"note": "2023-02-30"}}', 422, None),
    ('{"type": "Feature", "properties": {"inspected_on": "2023-13-01T10:00:00+08:00"}}', 422, None),
    ('{"type": "Feature", "geometry": {"type": "GeometryCollection", "geometries": []}}', 400, None),
    ('{"type": "Feature", "properties": {"seedlings": [1]}}', 400, "invalid_feature"),
    ('{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[1, 2]]}}', 400, "invalid_feature"),
    ('{"type": "Feature", "geometry": {"type": "Point", "coordinates": [107.2, 38.2]}}', 422, None),
    ('{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": '
     '[[[0, 0], [0.001, 0], [0.001, 0.001], [0, 0]]]}}', 422, None),
    ('{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": '
     '[[[1e308, 0], [0.001, 0], [0.001, 0.001], [1e308, 0]]]}}', 422, None),
])
def test_hostile_bodies_are_4xx_and_write_nothing(client, engine, body, status, code):
    fid = plot_ids(engine, offset=6)[0]
    before = row(engine, fid)
    _, etag = get(client, fid)
    r = client.patch(f"{PLOTS}/{fid}", content=body, headers={"If-Match": etag,
                                                               "Content-Type": "application/json"})
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    if code:
        assert r.json()["code"] == code
    assert row(engine, fid) == before


def test_other_media_types_and_oversized_bodies_are_refused(client, engine):
    fid = plot_ids(engine, offset=6)[0]
    _, etag = get(client, fid)
    xml = client.put(f"{PLOTS}/{fid}", content="<Feature/>", headers={"If-Match": etag,
                                                                       "Content-Type": "application/xml"})
    assert xml.status_code == 415 and xml.json()["code"] == "unsupported_media_type"
    huge = {"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[107.0, 38.0]] * 2_000_000}}
    big = client.put(f"{PLOTS}/{fid}", content=json.dumps(huge), headers={"If-Match": etag})
    assert big.status_code == 413


def test_writes_need_a_surveyor(edit_url, engine, tmp_path: Path):
    fid = plot_ids(engine)[0]
    with client_for(edit_url, tmp_path, surveyor=False) as anonymous:
        r = anonymous.patch(f"{PLOTS}/{fid}", json={"properties": {"seedlings": 1}},
                            headers={"If-Match": "*"})
        assert r.status_code == 401
        assert anonymous.post(PLOTS, json={"type": "Feature"}).status_code == 401


@pytest.mark.parametrize("layer_id", sorted(LAYERS))
def test_every_layer_takes_its_own_feature_back_unchanged(client, engine, layer_id):
    layer = LAYERS[layer_id]
    with engine.connect() as conn:
        fid = conn.scalar(sa.text(f"SELECT max(id) FROM {layer.table}"))
    path = f"/collections/{layer_id}/items/{fid}"
    feature, etag = client.get(path).json(), client.get(path).headers["etag"]
    r = client.put(path, json=feature, headers={"If-Match": etag})
    assert r.status_code == 200, r.text
    size = layer.size.name if layer.size else None
    if size:  # the same shape, to the millimetre GeoJSON's 8 decimals keep
        assert r.json()["properties"][size] == pytest.approx(feature["properties"][size], rel=1e-6)
    last = client.get(f"{path}/versions").json()["versions"][-1]
    assert last["edit_id"].startswith("edit:") and last["changes"]["moved_m"] < 0.01
    assert last["changes"]["attributes"] == {}


def test_a_body_in_another_crs_is_read_in_its_axis_order(client, engine):
    fid = plot_ids(engine, offset=7)[0]
    path = f"{PLOTS}/{fid}"
    etag = client.get(path).headers["etag"]
    before = row(engine, fid)
    gk = client.get(path, params={"crs": "http://www.opengis.net/def/crs/EPSG/0/4545"}).json()
    northing, easting = gk["geometry"]["coordinates"][0][0][0]
    assert northing > 4_000_000 and 36_000_000 > easting > 300_000  # northing first, as EPSG:4545 says
    r = client.put(path, json=gk, headers={"If-Match": etag,
                                           "Content-Crs": "<http://www.opengis.net/def/crs/EPSG/0/4545>"})
    assert r.status_code == 200, r.text
    assert row(engine, fid)["area_mu"] == pytest.approx(before["area_mu"], rel=1e-5)
    assert client.get(f"{path}/versions").json()["versions"][-1]["changes"]["moved_m"] < 0.01


def test_two_surveyors_saving_over_the_same_version_one_wins(client, engine):
    from concurrent.futures import ThreadPoolExecutor

    fid = plot_ids(engine, offset=8)[0]
    _, etag = get(client, fid)

    def save(seedlings: int) -> int:
        return client.patch(f"{PLOTS}/{fid}", json={"properties": {"seedlings": seedlings}},
                            headers={"If-Match": etag}).status_code

    with ThreadPoolExecutor(2) as pool:
        answers = sorted(pool.map(save, (111, 222)))
    assert answers == [200, 412]
    assert row(engine, fid)["seedlings"] in (111, 222)
    assert client.get(f"{PLOTS}/{fid}/versions").json()["versions"][-1]["changes"]["attributes"]["seedlings"]


def test_the_edit_page_is_a_surveyors_and_linked_from_the_feature(client, engine, edit_url, tmp_path: Path):
    fid = plot_ids(engine)[0]
    html = client.get(f"{PLOTS}/{fid}", params={"f": "html"}).text
    assert f"/maps/caragana_plots/features/{fid}/edit" in html
    page = client.get(f"/maps/caragana_plots/features/{fid}/edit")
    assert page.status_code == 200 and "种植方式" in page.text and "划区围封" in page.text
    assert "/static/vendor/geoman/leaflet-geoman.min.js" in page.text and "https://" not in page.text
    assert client.get("/maps/caragana_plots/features/999999999/edit").status_code == 404
    assert "Method" in client.get("/maps/caragana_plots/new-feature", params={"lang": "en"}).text
    assert "/maps/caragana_plots/new-feature" in client.get("/collections/caragana_plots?f=html").text
    with client_for(edit_url, tmp_path, surveyor=False) as anonymous:
        assert f"/features/{fid}/edit" not in anonymous.get(f"{PLOTS}/{fid}", params={"f": "html"}).text
        assert anonymous.get(f"/maps/caragana_plots/features/{fid}/edit").status_code == 401


def test_a_village_renamed_carries_its_features_along_and_cannot_go(client, engine):
    with engine.connect() as conn:
        fid, code, plots = conn.execute(sa.text(
            "SELECT v.id, v.code, count(*) FROM villages v JOIN caragana_plots p ON p.village_code = v.code "
            "GROUP BY v.id, v.code ORDER BY v.id LIMIT 1")).one()
    path = f"/collections/villages/items/{fid}"
    etag = client.get(path).headers["etag"]
    gone = client.delete(path, headers={"If-Match": etag})
    assert gone.status_code == 409 and gone.json()["code"] == "feature_in_use"
    assert client.get(path).headers["etag"] == etag
    # the layers' foreign keys cascade a new village code to the features that name it
    renamed = client.patch(path, json={"properties": {"code": "150623999999"}}, headers={"If-Match": etag})
    assert renamed.status_code == 200, renamed.text
    with engine.connect() as conn:
        moved = conn.scalar(sa.text("SELECT count(*) FROM caragana_plots WHERE village_code = :c"),
                            {"c": "150623999999"})
    assert moved == plots
    back = client.patch(path, json={"properties": {"code": code}},
                        headers={"If-Match": renamed.headers["etag"]})
    assert back.status_code == 200 and back.json()["properties"]["code"] == code
