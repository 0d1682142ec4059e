"""Every parameter of every route, fed what an attacker or a clumsy client sends.

The routes and their parameters are read from the application itself (its route table and
its OpenAPI document, which also lists the parameters the items route parses by hand), so
a new route or parameter is probed without editing this file. Each probe must answer a
4xx, never a 5xx, and the database must come through it all: a connection opened before
the probes still works after them, and the server was never restarted (``NaN`` in a
PostGIS buffer used to kill the backend and put the cluster through crash recovery).
"""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import psycopg
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.app import api_routes, create_app
from layers.demo import load_demo
from layers.settings import Settings
from tests.conftest import TEST_BASE, UNLIMITED

HOSTILE = [
    "NaN", "-Infinity", "1e999", "\x00", "a\x00b", "99999999999999999999999", "-99999999999999999999",
    "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", "0000-00-00", "x" * 5000,
    "<script>alert(1)</script>",
    "9999-12-31", "0001-01-01", "2147483648", "-1", "0",
    "'; SELECT pg_sleep(5); --", "../../../etc/passwd", "%", "[", "{",
]

FILTERS = [
    "(" * 5000 + "area_mu > 1" + ")" * 5000,
    " AND ".join(["area_mu > 1"] * 3000),
    "area_mu > 99999999999999999999999",
    "area_mu > 1e999",
    "area_mu * 1e308 * 1e308 > 1",
    "planted_year * 9223372036854775807 > 1",
    "S_INTERSECTS(geometry, POINT(1e308 1e308))",
    "S_INTERSECTS(geometry, POLYGON((-180 -90, 180 -90, 180 90, -180 90, -180 -90)))",
    "S_DWITHIN(geometry, POINT(107 38), 1e308, meters)",
    "inspected_on > DATE('9999-12-31')",
    "inspected_on > TIMESTAMP('9999-12-31T23:59:59-01:00')",
    "code = 'a\x00b'",
    "planted_year IN (" + ",".join(["1"] * 10_001) + ")",
    '{"op": "and", "args": ' + "[" * 3000 + "]" * 3000 + "}",
    '{"op": ">", "args": [{"property": "area_mu"}, NaN]}',
    '{"op": "s_intersects", "args": [{"property": "geometry"}, '
    '{"type": "Point", "coordinates": [1e308, 0]}]}',
]

QUERY_BODIES = [
    '{"layers": ["land_leases"], "area": {"min": NaN}}',
    '{"layers": ["land_leases"], "area": {"max": Infinity}}',
    '{"layers": ["land_leases"], "buffer_m": NaN, "place": {"bbox": [107, 38, 107.1, 38.1]}}',
    '{"layers": ["land_leases"], "buffer_m": 1e999, "place": {"bbox": [107, 38, 107.1, 38.1]}}',
    '{"layers": ["land_leases"], "place": {"geometry": {"type": "Point", "coordinates": [NaN, 38]}},'
    ' "buffer_m": 100}',
    '{"layers": ["land_leases"], "place": {"geometry": {"type": "Polygon", "coordinates": '
    '[[[-179, -89], [179, -89], [179, 89], [-179, 89], [-179, -89]]]}}, "buffer_m": 10}',
    '{"layers": ["land_leases"], "place": {"bbox": [-180, -90, 180, 90]}, "buffer_m": 100000}',
    '{"layers": ["land_leases"], "place": {"geometry": {"type": "Point", "coordinates": [1e308, 1e308]}},'
    ' "buffer_m": 10}',
    '{"layers": ["land_leases"], "where": {"annual_rent_yuan": NaN}}',
    '{"layers": ["caragana_plots"], "where": {"planted_year": 99999999999999999999}}',
    '{"layers": ["caragana_plots"], "where": {"planted_year": 3000000000}}',
    '{"layers": ["land_leases"], "where": {"lessee": "a\\u0000b"}}',
    '{"layers": ["land_leases"], "limit": 99999999999999999999}',
    '{"layers": ["land_leases"], "place": {"villages": ["\\u0000"]}}',
    '{"layers": ["land_leases"], "where": {"lessee": ' + "[" * 100_000 + "]" * 100_000 + "}}",
    "[" * 100_000 + "]" * 100_000,
    '{"layers": ["land_leases"], "where": {"lessee": "' + "x" * 2_000_000 + '"}}',
]


def _valid(conn: sa.Connection) -> dict[str, str]:
    """A good value for each path parameter, so that only the probed one is hostile."""
    return {
        "collection_id": "caragana_plots", "layer_id": "caragana_plots", "tms": "WebMercatorQuad",
        "z": "12", "x": "3315", "y": "1579", "upload_id": "0" * 32, "check_id": "leases_on_subsidence",
        "fmt": "png", "job_id": "1", "version": "1", "raster_id": "1",
        "feature_id": str(conn.scalar(sa.text("SELECT min(id) FROM caragana_plots"))),
        "code": conn.scalar(sa.text("SELECT min(code) FROM villages")),
    }


def _operations(app, doc: dict) -> list[tuple[str, str, set[str], set[str]]]:
    """(method, path, path parameters, query parameters) of every route, documented or not."""
    documented = {(m.upper(), p): op for p, ops in doc["paths"].items() for m, op in ops.items()}
    out = []
    for route in api_routes(app):
        for method in sorted(route.methods - {"HEAD"}):
            op = documented.get((method, route.path), {})
            query = {p.alias for p in route.dependant.query_params}
            query |= {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
            path = set(re.findall(r"{(\w+)}", route.path))
            out.append((method, route.path, path, query))
    return out


@pytest.fixture(scope="module")
def township(new_database):
    with new_database("landeco_test_hostile") as url:
        load_demo(url)
        yield url


@pytest.fixture(scope="module")
def client(township, tmp_path_factory):
    settings = Settings(database_url=township.render_as_string(hide_password=False),
                        home=tmp_path_factory.mktemp("home"), **UNLIMITED)
    with TestClient(create_app(settings), base_url=TEST_BASE, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def watched_backend(township):
    """A connection opened before the probes, and the server's start time."""
    dsn = township.set(drivername="postgresql").render_as_string(hide_password=False)
    conn = psycopg.connect(dsn, autocommit=True)
    started = conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0]
    yield conn, started
    conn.close()


def _answer_ok(r, what: str) -> None:
    assert r.status_code < 500, f"{what}: {r.status_code} {r.text[:300]}"
    if r.status_code >= 400 and "json" in r.headers.get("content-type", ""):
        assert r.headers["content-type"].startswith("application/problem+json"), what
        assert r.json()["code"], what


def test_every_parameter_of_every_route_refuses_hostile_values(client, township, watched_backend):
    doc = client.get("/api").json()
    engine = sa.create_engine(township, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        valid = _valid(conn)
    engine.dispose()
    probed = 0
    for method, path, path_params, query_params in _operations(client.app, doc):
        base = path.format(**{k: valid[k] for k in path_params})
        for name in sorted(path_params):
            for value in HOSTILE:
                url = path.format(**{**{k: valid[k] for k in path_params}, name: quote(value, safe="")})
                _answer_ok(client.request(method, url), f"{method} {path} {name}={value[:30]!r}")
                probed += 1
        for name in sorted(query_params):
            for value in HOSTILE + (FILTERS if name == "filter" else []):
                r = client.request(method, base, params={name: value})
                _answer_ok(r, f"{method} {path} ?{name}={value[:30]!r}")
                probed += 1
    assert probed > 1500


def test_json_bodies_with_hostile_numbers_depth_and_size(client):
    for body in QUERY_BODIES:
        r = client.post("/query", content=body, headers={"content-type": "application/json"})
        _answer_ok(r, body[:80])
        assert 400 <= r.status_code < 500, body[:80]
    odd = client.post("/query", json={"layers": ["land_leases"], "where": {"start_date": "9999-12-31"}})
    assert odd.status_code == 200 and odd.json()["summary"]["total"]["count"] == 0
    nan = client.post("/query", content=QUERY_BODIES[0], headers={"content-type": "application/json"})
    assert nan.status_code == 400 and "finite" in nan.json()["detail"]
    big = client.post("/query", content=QUERY_BODIES[-1], headers={"content-type": "application/json"})
    assert big.status_code == 413 and big.json()["code"] == "too_large"


def test_upload_form_fields_are_checked(client):
    for field in ("layer", "mode", "crs", "encoding", "dataset", "options"):
        for value in HOSTILE:
            data = {"layer": "caragana_plots", field: value}
            r = client.post("/uploads", data=data, files={"file": ("a.geojson", b"{}")})
            _answer_ok(r, f"POST /uploads {field}={value[:30]!r}")
            r = client.post("/uploads/form", data=data, files={"file": ("a.geojson", b"{}")})
            _answer_ok(r, f"POST /uploads/form {field}={value[:30]!r}")
    for value in HOSTILE:
        _answer_ok(client.post(f"/uploads/{quote(value, safe='')}/commit/form"), f"commit {value[:30]!r}")


def test_raster_form_fields_are_checked(client, township):
    from layers.store.database import engine_for
    from tests.conftest import surveyor_headers

    auth = surveyor_headers(township)  # so that the fields are read, not refused at the door
    tif = b"II*\x00" + b"\x00" * 64
    for field in ("kind", "acquired", "source", "band_meaning"):
        for value in HOSTILE:
            data = {"kind": "ndvi", "acquired": "2022-07-15", field: value}
            for path in ("/rasters", "/rasters/form"):
                r = client.post(path, data=data, files={"file": (value[:100] or "x.tif", tif)}, headers=auth)
                _answer_ok(r, f"POST {path} {field}={value[:30]!r}")
                assert 400 <= r.status_code < 500, f"POST {path} {field}={value[:30]!r}: {r.status_code}"
    with engine_for(township.render_as_string(hide_password=False)).connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM rasters")) == 0


def test_the_database_came_through(client, watched_backend):
    """Run last in this module: the probes above must not have crashed a backend."""
    conn, started = watched_backend
    assert conn.execute("SELECT 1").fetchone() == (1,)
    assert conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0] == started
    assert client.get("/health").status_code == 200


def test_nul_in_the_address_is_refused_before_any_route():
    from api.edge import EdgeGuard  # the one place NUL in a URL is caught

    assert EdgeGuard._check_url({"path": "/x", "raw_path": b"/x%00", "query_string": b""}) is not None
    assert EdgeGuard._check_url({"path": "/x", "raw_path": b"/x", "query_string": b"a=%2500"}) is None
    assert EdgeGuard._check_url({"path": "/x", "raw_path": b"/x", "query_string": b"a=1"}) is None
    assert json.loads(EdgeGuard._check_url({"path": "/", "raw_path": b"/", "query_string": b"a=%00"})[1])[
        "code"] == "invalid_text"
