"""Figures of the annual ecology review that a grouping by fields cannot give.

:func:`layers.stats.layer_stats` totals a layer by its fields; the review also needs what
survives of each year's caragana (a product of two fields: area or seedlings × survival
rate) and the active leases by the year they end (a part of a date). Both are summed in
PostGIS, so a notebook or a report asks for them instead of writing its own SQL.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa

from layers.registry import get_layer

__all__ = ["caragana_by_year", "leases_by_end_year"]


def caragana_by_year(conn: sa.Connection) -> list[dict[str, Any]]:
    """Caragana planted and surviving per planting year, oldest first.

    Each row: ``planted_year``, ``plots``, ``area_mu`` planted, ``seedlings`` planted,
    ``surviving_seedlings`` (Σ seedlings × survival rate), ``surviving_area_mu`` (Σ area ×
    survival rate: the area that took), ``survival_rate`` (weighted by area, as
    :func:`layers.stats.layer_stats` weighs it) and ``uninspected_mu``, the area whose survival
    is not known yet (no rate): it counts as planted, never as surviving.
    """
    table = get_layer("caragana_plots").table
    rated = "FILTER (WHERE t.survival_rate IS NOT NULL)"
    sql = (f"SELECT t.planted_year, count(*) AS plots, coalesce(sum(t.area_mu), 0) AS area_mu, "
           f"sum(t.seedlings) AS seedlings, "
           f"sum(t.seedlings * t.survival_rate) AS surviving_seedlings, "
           f"coalesce(sum(t.area_mu * t.survival_rate) {rated}, 0) AS surviving_area_mu, "
           f"sum(t.area_mu * t.survival_rate) {rated} / nullif(sum(t.area_mu) {rated}, 0) AS survival_rate, "
           f"coalesce(sum(t.area_mu) FILTER (WHERE t.survival_rate IS NULL), 0) AS uninspected_mu "
           f"FROM {table} t GROUP BY t.planted_year ORDER BY t.planted_year")
    out = []
    for r in conn.execute(sa.text(sql)):
        row = dict(r._mapping)
        for k in ("area_mu", "surviving_area_mu", "uninspected_mu"):
            row[k] = round(float(row[k]), 4)
        row["seedlings"] = None if row["seedlings"] is None else int(row["seedlings"])
        if row["surviving_seedlings"] is not None:
            row["surviving_seedlings"] = round(float(row["surviving_seedlings"]))
        if row["survival_rate"] is not None:
            row["survival_rate"] = round(float(row["survival_rate"]), 4)
        out.append(row)
    return out


def leases_by_end_year(conn: sa.Connection, on: date) -> list[dict[str, Any]]:
    """Leases active on ``on``, by purpose and the year they end (``None``: no end date).

    Each row: ``purpose``, ``end_year``, ``leases``, ``area_mu``, ``annual_rent_yuan``.
    "Active" is the layer's own rule (status active, started, not ended on ``on``), the one
    the map and the statistics use, so the three agree.
    """
    layer = get_layer("land_leases")
    assert layer.active is not None  # leases declare what active means
    sql = (f"SELECT t.purpose, extract(year FROM t.end_date)::int AS end_year, count(*) AS leases, "
           f"coalesce(sum(t.area_mu), 0) AS area_mu, sum(t.annual_rent_yuan) AS annual_rent_yuan "
           f"FROM {layer.table} t WHERE {layer.active.sql('t', ':on')} "
           f"GROUP BY 1, 2 ORDER BY 1, 2 NULLS LAST")
    out = []
    for r in conn.execute(sa.text(sql), {"on": on}):
        row = dict(r._mapping)
        row["area_mu"] = round(float(row["area_mu"]), 4)
        if row["annual_rent_yuan"] is not None:
            row["annual_rent_yuan"] = round(float(row["annual_rent_yuan"]), 2)
        out.append(row)
    return out
