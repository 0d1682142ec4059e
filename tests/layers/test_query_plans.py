"""The statements can use the indexes: the area btree for sizes, the GiST for places.

With sequential scans switched off PostgreSQL takes an index whenever the predicate allows
one, so these plans show that the SQL is written so that it can (on a large layer the
planner chooses them by itself; bench/query.py measures that).
"""

from __future__ import annotations

import pytest

from layers.query import QuerySpec, compile_query, json_sql
from layers.store.database import engine_for
from tests.layers import test_query_cases as cases

township = cases.township


@pytest.fixture
def conn(township):
    with engine_for(township.render_as_string(hide_password=False)).connect() as c:
        c.exec_driver_sql("SET enable_seqscan = off")
        yield c


def _plan(conn, **spec) -> str:
    (c,) = compile_query(conn, QuerySpec(**spec))
    return "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + json_sql(c), c.params))


def test_size_filter_uses_the_area_index(conn):
    plan = _plan(conn, layers=["land_leases"], area={"min": 1, "max": 2, "unit": "ha"})
    assert "ix_land_leases_area_mu" in plan


def test_place_uses_the_spatial_index(conn):
    plan = _plan(conn, layers=["land_leases"], place={"bbox": [107.0, 38.0, 107.05, 38.05]})
    assert "idx_land_leases_geom" in plan and "geom && place.g" in plan
