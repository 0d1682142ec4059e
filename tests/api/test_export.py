"""Exports re-read as planners' software would: pyogrio (GDAL), openpyxl, the .prj by pyproj."""

from __future__ import annotations

import io
import zipfile

import pyogrio
import pytest
from openpyxl import load_workbook
from pyproj import CRS

from tests.conftest import client_for
from tests.layers import test_query_cases as cases
from tests.layers.test_query_cases import LEASES, V1

township = cases.township


@pytest.fixture(scope="module")
def client(township, tmp_path_factory):
    with client_for(township, tmp_path_factory.mktemp("home")) as c:
        yield c


def _unzip(content: bytes, folder):
    with zipfile.ZipFile(io.BytesIO(content)) as zf:
        zf.extractall(folder)
        return sorted(zf.namelist())


@pytest.mark.parametrize("encoding, cpg", [("utf-8", "UTF-8"), ("gbk", "936")])
def test_shapefile_keeps_chinese_text_in_either_encoding(client, tmp_path, encoding, cpg):
    r = client.get(f"/export/land_leases?format=shp&encoding={encoding}")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    names = _unzip(r.content, tmp_path)
    assert {"land_leases.shp", "land_leases.shx", "land_leases.dbf", "land_leases.prj",
            "land_leases.cpg"} <= set(names)
    assert (tmp_path / "land_leases.cpg").read_text() == cpg
    if encoding == "gbk":  # the bytes really are GBK
        assert "京能光伏发电有限公司".encode("gbk") in (tmp_path / "land_leases.dbf").read_bytes()
    frame = pyogrio.read_dataframe(tmp_path / "land_leases.shp")  # GDAL reads the .cpg
    lessees = dict(zip(frame["CODE"], frame["LESSEE"], strict=True))
    assert lessees == {code: lease[1] for code, lease in LEASES.items()}
    assert frame.crs.to_epsg() == 4326


@pytest.mark.parametrize("crs", [4326, 4490, 4545])
def test_shapefile_prj_names_the_crs(client, tmp_path, crs):
    r = client.get(f"/export/subsidence_zones?format=shp&crs={crs}")
    _unzip(r.content, tmp_path)
    assert CRS.from_wkt((tmp_path / "subsidence_zones.prj").read_text()).to_epsg() == crs
    frame = pyogrio.read_dataframe(tmp_path / "subsidence_zones.shp")
    # long names become the layer's declared short aliases, which the importer maps back
    assert {"HH_TOTAL", "HH_RELOC", "COMP_WAN"} <= set(frame.columns)
    if crs == 4545:  # metres: the township lies east of 500 000 on CM 108°E's west side
        assert 300_000 < frame.total_bounds[0] < 500_000


def test_geopackage_of_a_query_holds_each_layer(client, tmp_path):
    r = client.post("/query?format=gpkg", json={"layers": ["land_leases", "caragana_plots"],
                                               "place": {"villages": [V1]}})
    assert r.status_code == 200
    path = tmp_path / "q.gpkg"
    path.write_bytes(r.content)
    assert {name for name, _ in pyogrio.list_layers(path)} == {"land_leases", "caragana_plots"}
    leases = pyogrio.read_dataframe(path, layer="land_leases")
    assert set(leases["code"]) == {"L1", "L2", "L3", "L4"}
    l4 = leases.set_index("code").loc["L4"]
    assert l4["area_inside_mu"] == pytest.approx(cases.mu(LEASES["L4"][-1] & cases.VILLAGES[V1][1]), rel=1e-4)


def test_geojson_and_csv(client, tmp_path):
    r = client.get("/export/land_leases?format=geojson")
    (tmp_path / "l.geojson").write_bytes(r.content)
    frame = pyogrio.read_dataframe(tmp_path / "l.geojson")
    assert len(frame) == 5 and "京能光伏发电有限公司" in set(frame["lessee"])
    r = client.get("/export/land_leases?format=csv")
    assert r.content.startswith(b"\xef\xbb\xbf")  # BOM: Excel reads UTF-8 Chinese
    text = r.content.decode("utf-8-sig")
    assert text.splitlines()[0].startswith("编号,") and text.splitlines()[0].endswith(",WKT")
    assert "MULTIPOLYGON" in text and "京能光伏发电有限公司" in text
    r = client.get("/export/land_leases?format=csv&geometry=none")
    assert "POLYGON" not in r.content.decode("utf-8-sig")


def test_xlsx_with_chinese_headers(client):
    r = client.post("/query?format=xlsx", json={"layers": ["land_leases"], "where": {"status": "active"}})
    wb = load_workbook(io.BytesIO(r.content))
    rows = list(wb["土地租赁"].values)
    assert "承租方" in rows[0] and "面积（亩）" in rows[0]
    assert len(rows) == 1 + 4 + 1  # header, four active leases, the totals row


@pytest.mark.parametrize("query, code", [("format=dwg", "invalid_parameter"), ("crs=3857", "unsupported_crs"),
                                         ("encoding=latin1", "invalid_parameter")])
def test_bad_export_requests(client, query, code):
    r = client.get(f"/export/land_leases?{query}")
    assert r.status_code == 400 and r.json()["code"] == code
    assert r.headers["content-type"] == "application/problem+json"


def test_unknown_layer(client):
    r = client.get("/export/roads?format=gpkg")
    assert r.status_code == 404 and r.json()["code"] == "unknown_layer"


@pytest.mark.parametrize("fmt", ["gpkg", "shp", "xlsx", "csv"])
def test_large_exports_are_written_in_chunks_with_one_schema(client, tmp_path, monkeypatch, fmt):
    """Chunks of two features: every feature arrives once, in order, with the declared types."""
    import layers.export

    monkeypatch.setattr(layers.export, "CHUNK", 2)
    r = client.get(f"/export/land_leases?format={fmt}")
    assert r.status_code == 200
    if fmt == "xlsx":
        rows = list(load_workbook(io.BytesIO(r.content))["土地租赁"].values)
        assert [row[0] for row in rows[1:-1]] == sorted(LEASES)
        assert rows[-1][0] == "合计（5 个）"
        return
    path = tmp_path / f"x.{'zip' if fmt == 'shp' else fmt}"
    path.write_bytes(r.content)
    source = f"/vsizip/{path}/land_leases.shp" if fmt == "shp" else path
    frame = pyogrio.read_dataframe(source)
    codes = {"shp": "CODE", "csv": "编号"}.get(fmt, "code")
    assert list(frame[codes])[:5] == sorted(LEASES)
    if fmt != "csv":
        info = pyogrio.read_info(source)
        types = dict(zip(info["fields"], info["dtypes"], strict=True))
        assert types["ID" if fmt == "shp" else "id"] == "int64"
