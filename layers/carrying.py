"""Carrying capacity (以草定畜, 草畜平衡): the sheep units a village's pasture carries, against its stock.

The pasture is the village's grazing-ban areas in force on the day (禁牧, 休牧, 划区轮牧,
草畜平衡区); each carries, after NY/T 635-2015 (天然草地合理载畜量的计算)::

    sheep units = area (亩) × usable dry forage (kg/亩/year) × utilisation rate / (1.8 kg × 365 d)

with the forage yield per regime a setting (``LANDECO_FORAGE_YIELD_KG_PER_MU``; full-ban
pasture carries none), or from a vegetation-cover raster where one exists
(:func:`raster_forage_yield`), the utilisation rate ``LANDECO_FORAGE_USE_RATE`` and a sheep
unit's 1.8 kg of hay a day ``LANDECO_SHEEP_UNIT_KG_PER_DAY``. The stock is the livestock
count staff entered for the village and year (:mod:`layers.livestock`), in sheep units by
``LANDECO_SHEEP_UNIT_FACTORS``. A village whose stock exceeds its capacity is over capacity.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa

from layers.periods import Period
from layers.registry import LAYERS
from layers.settings import Settings
from layers.store.schema import LIVESTOCK_ANIMALS

__all__ = ["carrying_capacity", "livestock_sheep_units", "raster_forage_yield"]

_REGIMES = {c.value: c for c in LAYERS["grazing_bans"].get_field("regime").choices}
_ANIMAL_WORDS = {
    "sheep": ("绵羊", "sheep"),
    "goats": ("山羊", "goats"),
    "cattle": ("牛", "cattle"),
    "horses": ("马", "horses"),
    "camels": ("骆驼", "camels"),
}


def raster_forage_yield(conn: sa.Connection, village_code: str, regime: str, day: date) -> float | None:
    """Usable forage (kg/亩) of a village's pasture of ``regime`` read from imagery, or None.

    The hook for the raster registry (issue 12: ``rasters``, zonal statistics): when a
    fractional-vegetation-cover raster of the growing season covers the pasture, its mean
    cover times the grassland station's yield at full cover gives the yield here. Until the
    registry and zonal results are in this database there is nothing to read: None, and the
    per-regime setting is used.
    """
    del conn, village_code, regime, day  # read from the zonal results once that branch is merged
    return None


def livestock_sheep_units(row: dict[str, Any], factors: dict[str, float]) -> float:
    """A count's sheep units: as given, else each animal type × its factor."""
    if row.get("sheep_units") is not None:
        return float(row["sheep_units"])
    return float(sum((row.get(a) or 0) * factors.get(a, 0.0) for a in LIVESTOCK_ANIMALS))


def carrying_capacity(
    conn: sa.Connection, settings: Settings, period: Period, *, lang: str = "zh"
) -> dict[str, Any]:
    """Per village: pasture in force at the period's end by regime, sheep units it carries, stock counted.

    The livestock count is the village's for the year of the period's end. Villages with
    pasture but no count, or a count but no pasture, are listed with what is missing,
    never judged.
    """
    en = lang == "en"
    day = period.end
    year = day.year
    layer = LAYERS["grazing_bans"]
    yields = settings.forage_yield_kg_per_mu
    use, kg_day = settings.forage_use_rate, settings.sheep_unit_kg_per_day
    pastures = conn.execute(
        sa.text(
            "SELECT t.village_code AS code, t.regime, sum(t.area_mu) AS mu, count(*) AS n, "
            "array_agg(t.id) AS ids "
            f"FROM grazing_bans t WHERE {layer.in_force_sql('t', ':on')} AND t.village_code IS NOT NULL "
            "GROUP BY t.village_code, t.regime ORDER BY 1, 2"
        ),
        {"on": day},
    ).all()
    has_table = conn.scalar(sa.text("SELECT to_regclass('livestock_counts') IS NOT NULL"))
    counts = (
        {
            r["village_code"]: r
            for r in (
                dict(x._mapping)
                for x in conn.execute(sa.text("SELECT * FROM livestock_counts WHERE year = :y"), {"y": year})
            )
        }
        if has_table
        else {}
    )
    names = dict(conn.execute(sa.text("SELECT code, name FROM villages")).all())
    villages: dict[str, dict[str, Any]] = {}
    for r in pastures:
        v = villages.setdefault(
            r.code,
            {
                "code": r.code,
                "name": names.get(r.code),
                "pasture_mu": 0.0,
                "by_regime": [],
                "capacity_su": 0.0,
                "ids": [],
            },
        )
        from_raster = (
            raster_forage_yield(conn, r.code, r.regime, day) if settings.forage_from_raster else None
        )
        kg_mu = from_raster if from_raster is not None else float(yields.get(r.regime, 0.0))
        su = float(r.mu) * kg_mu * use / (kg_day * 365)
        choice = _REGIMES.get(r.regime)
        v["by_regime"].append(
            {
                "regime": r.regime,
                "label": (choice.en if en else choice.zh) if choice else r.regime,
                "area_mu": round(float(r.mu), 2),
                "yield_kg_per_mu": kg_mu,
                "yield_source": "raster" if from_raster is not None else "setting",
                "capacity_su": round(su, 1),
            }
        )
        v["pasture_mu"] += float(r.mu)
        v["capacity_su"] += su
        v["ids"] += list(r.ids)
    for code in counts:
        villages.setdefault(
            code,
            {
                "code": code,
                "name": names.get(code),
                "pasture_mu": None,
                "by_regime": [],
                "capacity_su": None,
                "ids": [],
            },
        )
    rows = []
    for code in sorted(villages):
        v = villages[code]
        count = counts.get(code)
        stock = livestock_sheep_units(count, settings.sheep_unit_factors) if count else None
        cap = v["capacity_su"]
        if cap is None:
            status = "no_pasture"
        elif stock is None:
            status = "no_count"
        else:
            status = "over" if stock > cap else "within"
        words = {
            "over": ("超载", "over capacity"),
            "within": ("未超载", "within capacity"),
            "no_count": ("未录入牲畜数量", "no livestock count entered"),
            "no_pasture": ("无在册草场（禁牧休牧区图层）", "no pasture in the grazing-ban layer"),
        }[status]
        rows.append(
            {
                "code": code,
                "name": v["name"],
                "pasture_mu": round(v["pasture_mu"], 2) if v["pasture_mu"] is not None else None,
                "by_regime": v["by_regime"],
                "capacity_su": round(cap, 1) if cap is not None else None,
                "livestock": {a: count[a] for a in LIVESTOCK_ANIMALS} if count else None,
                "livestock_su": round(stock, 1) if stock is not None else None,
                "excess_su": round(stock - cap, 1) if stock is not None and cap is not None else None,
                "load_pct": round(stock / cap * 100, 1) if stock is not None and cap else None,
                "status": status,
                "status_label": words[1 if en else 0],
                "over": status == "over",
                "pasture_ids": sorted(v["ids"]),
            }
        )
    factors = "、".join(f"{_ANIMAL_WORDS[a][0]} {f:g}" for a, f in settings.sheep_unit_factors.items()
                       if a in _ANIMAL_WORDS)
    factors_en = ", ".join(f"{_ANIMAL_WORDS[a][1]} {f:g}" for a, f in settings.sheep_unit_factors.items()
                           if a in _ANIMAL_WORDS)
    formula = (
        f"sheep units = area (mu) × usable forage (kg/mu/year, by regime) × utilisation {use} "
        f"/ ({kg_day} kg × 365 d) (NY/T 635-2015); stock: livestock count of {year} × sheep-unit "
        f"factors ({factors_en}); pasture: grazing-ban areas in force on {day.isoformat()}"
        if en
        else f"理论载畜量（羊单位）= 草场面积（亩）× 可利用干草产量（千克/亩·年，按管控方式）× 利用率 {use} "
        f"÷（{kg_day} 千克 × 365 天）（NY/T 635-2015）；实际载畜量：{year}年牲畜数量 × 羊单位折算系数 "
        f"（{factors}）；草场：{day.isoformat()} 有效的禁牧休牧区"
    )
    return {
        "day": day.isoformat(),
        "year": year,
        "formula": formula,
        "constants": {
            "forage_yield_kg_per_mu": dict(yields),
            "forage_use_rate": use,
            "sheep_unit_kg_per_day": kg_day,
            "sheep_unit_factors": dict(settings.sheep_unit_factors),
            "standard": "NY/T 635-2015 天然草地合理载畜量的计算",
        },
        "animals": {a: _ANIMAL_WORDS[a][1 if en else 0] for a in LIVESTOCK_ANIMALS},
        "villages": rows,
        "over": [r["code"] for r in rows if r["over"]],
    }
