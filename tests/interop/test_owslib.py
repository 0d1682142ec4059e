"""OWSLib's OGC API – Features client reads landeco."""

from __future__ import annotations

import sqlalchemy as sa
from owslib.ogcapi.features import Features

from layers.registry import LAYERS
from layers.store.database import engine_for


def test_owslib_lists_collections_and_reads_items(live_url, demo_url):
    api = Features(live_url)
    assert any(c.endswith("ogcapi-features-1/1.0/conf/core") for c in api.conformance()["conformsTo"])
    ids = {c["id"] for c in api.collections()["collections"]}
    assert ids == set(LAYERS)
    assert set(api.feature_collections()) == set(LAYERS)
    leases = api.collection("land_leases")
    assert leases["title"] == "土地租赁"
    page = api.collection_items("land_leases", limit=10)
    with engine_for(demo_url.render_as_string(hide_password=False)).connect() as conn:
        total = conn.execute(sa.text("SELECT count(*) FROM land_leases")).scalar()
    assert page["numberMatched"] == total and len(page["features"]) == 10
    boxed = api.collection_items("caragana_plots", bbox=[107.1, 38.1, 107.3, 38.3], limit=1000)
    assert 0 < boxed["numberReturned"] < total * 10
    one = api.collection_item("land_leases", str(page["features"][0]["id"]))
    assert one["properties"]["code"] == page["features"][0]["properties"]["code"]


def test_owslib_queryables_and_filters(live_url):
    api = Features(live_url)
    q = api.collection_queryables("caragana_plots")
    assert {"area_mu", "planted_year", "geometry"} <= set(q["properties"])
    big = api.collection_items("caragana_plots", filter="area_mu > 20", limit=1000)
    assert all(f["properties"]["area_mu"] > 20 for f in big["features"])
    sorted_page = api.collection_items("caragana_plots", sortby=("area_mu", "desc"), limit=5)
    areas = [f["properties"]["area_mu"] for f in sorted_page["features"]]
    assert areas == sorted(areas, reverse=True)
