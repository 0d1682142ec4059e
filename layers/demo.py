"""The demo township: a deterministic, plausible 鄂托克前旗 township to look at and measure.

Geometry comes from :mod:`gis.synth`; this module gives it meaning: the villages named in
the township's 2022 work report, subsidence zones over the coal field with households and
compensation, grazing bans over the northern pastoral gachas, caragana plots by year and
method, and leases for the projects the report names; then the report's ecology projects:
林草重点工程 areas, 网围栏 fences around the grassland ones (reported in 万米), and the
哈沙图 and 特布德 清洁小流域. The same seed gives the same township.
``parcels`` turns the caragana layer into a benchmark-sized fabric (100 000, 1 000 000).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import shapely
import sqlalchemy as sa
from shapely.geometry import LineString, Polygon
from shapely.geometry.base import BaseGeometry
from sqlalchemy.engine import URL

from gis import synth
from gis.area import geodesic_area_m2, m2_to
from layers.registry import LAYERS
from layers.store.database import engine_for
from layers.store.load import copy_features

__all__ = ["DEMO_AS_OF", "VILLAGES", "Township", "generate", "load_demo"]

#: The demo is written as of this day: lease status and "expiring soon" are relative to it.
DEMO_AS_OF = date(2026, 11, 1)
TOWNSHIP_CODE = "150623101"

#: (name, kind), north to south: pastoral gachas in the north, the coal field and farms in
#: the south. Names from the work report where it gives them; the rest are plausible.
VILLAGES: tuple[tuple[str, str], ...] = (
    ("巴音希里嘎查", "gacha"),
    ("哈沙图嘎查", "gacha"),
    ("陶利嘎查", "gacha"),
    ("芒哈图嘎查", "gacha"),
    ("特布德嘎查", "gacha"),
    ("沙章图村", "village"),
    ("八一村", "village"),
    ("新民村", "village"),
    ("布拉格社区", "community"),
    ("马兰花社区", "community"),
    ("长城社区", "community"),
    ("苏力迪嘎查", "gacha"),
)
PASTORAL = 5  # the first five are the northern pastoral area (grazing bans)
COAL_FIELD = ("沙章图村", "八一村", "布拉格社区", "苏力迪嘎查")

MINES = ("榆树井煤矿", "新上海一号煤矿", "鹰骏三号煤矿", "双欣煤矿", "长城五号煤矿")
CONTRACTORS = ("鄂托克前旗绿源生态建设有限公司", "内蒙古沙草林牧工程公司", "特布德嘎查合作社",
               "海禾乡村产业发展公司", "宁夏固沙造林工程队")
HERDERS = ("巴图", "其木格", "乌力吉", "王建国", "斯琴", "李玉兰", "那仁", "张海军", "格日勒", "刘福")


@dataclass
class Township:
    """Every layer's rows (attribute dicts) and geometries (lon/lat), by layer id."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    geoms: dict[str, list[BaseGeometry]] = field(default_factory=dict)
    #: workflow steps taken after loading (change patches are found pending): (code, status, note)
    steps: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, layer_id: str, row: dict[str, Any], geom: BaseGeometry) -> None:
        """Append one feature."""
        self.rows.setdefault(layer_id, []).append(row)
        self.geoms.setdefault(layer_id, []).append(geom)

    def counts(self) -> dict[str, int]:
        """Features per layer."""
        return {layer_id: len(self.rows.get(layer_id, [])) for layer_id in LAYERS}


def _mu(geom: BaseGeometry) -> float:
    return m2_to(geodesic_area_m2(geom), "mu")


def _day(rng: np.random.Generator, start: date, end: date) -> date:
    return start + timedelta(days=int(rng.integers(0, (end - start).days + 1)))


def _villages(town: Township, rng: np.random.Generator) -> list[tuple[str, Polygon]]:
    outline = synth.township_outline(rng)
    pieces = synth.partition(outline, len(VILLAGES), rng)
    result = []
    for i, ((name, kind), geom) in enumerate(zip(VILLAGES, pieces, strict=True)):
        serial = f"{i + 1:03d}" if kind == "community" else f"{200 + i + 1:03d}"
        code = TOWNSHIP_CODE + serial
        pop = int(rng.integers(2500, 9000) if kind == "community" else rng.integers(300, 1800))
        town.add("villages", {"code": code, "name": name, "kind": kind, "population": pop}, geom)
        result.append((code, geom))
    return result


def _subsidence(town: Township, rng: np.random.Generator, villages: dict[str, tuple]) -> None:
    n = 0
    for name in COAL_FIELD:
        code, geom = villages[name]
        for blob in synth.blobs(geom, int(rng.integers(6, 10)), rng,
                                min_area_m2=4e5, max_area_m2=6e6):
            n += 1
            severity = rng.choice(["light", "moderate", "severe"], p=[0.4, 0.4, 0.2])
            status = rng.choice(["monitoring", "relocating", "relocated", "rehabilitating",
                                 "rehabilitated"], p=[0.2, 0.25, 0.25, 0.2, 0.1])
            total = int(max(0, rng.poisson(_mu(blob) / 800)))
            relocated = {"monitoring": 0, "relocating": int(total * rng.uniform(0.2, 0.8))}.get(
                str(status), total)
            depth = {"light": (0.3, 1.5), "moderate": (1.5, 4.0), "severe": (4.0, 9.0)}[severity]
            town.add("subsidence_zones", {
                "code": f"CX-{n:04d}",
                "village_code": code,
                "name": f"{name[:-1] if name.endswith('村') else name[:3]}{n}号沉陷区",
                "mine": str(rng.choice(MINES)),
                "severity": str(severity),
                "max_depth_m": round(float(rng.uniform(*depth)), 1),
                "status": str(status),
                "households_total": total,
                "households_relocated": relocated,
                "compensation_wan_yuan": round(relocated * float(rng.uniform(25, 60)), 1),
                "surveyed_on": _day(rng, date(2018, 3, 1), date(2022, 10, 31)),
            }, blob)


def _grazing_bans(town: Township, rng: np.random.Generator, pastoral: list[tuple]) -> None:
    n = 0
    for name, code, geom in pastoral:
        # current delineation (2024–2028) and, for some, the previous one (2019–2023)
        periods = [(date(2024, 1, 1), date(2028, 12, 31), "鄂前政发〔2024〕12号")]
        if rng.random() < 0.6:
            periods.append((date(2019, 1, 1), date(2023, 12, 31), "鄂前政发〔2019〕7号"))
        for valid_from, valid_to, doc in periods:
            for piece in synth.partition(geom, int(rng.integers(2, 5)), rng, grain=600):
                n += 1
                regime = str(rng.choice(["full_ban", "seasonal_rest", "rotational", "balance"],
                                        p=[0.35, 0.35, 0.15, 0.15]))
                rest = regime == "seasonal_rest"
                town.add("grazing_bans", {
                    "code": f"JM-{valid_from.year}-{n:03d}",
                    "village_code": code,
                    "name": f"{name}{LAYER_REGIME_ZH[regime]}区",
                    "regime": regime,
                    "season_start": "04-01" if rest else None,
                    "season_end": "06-30" if rest else None,
                    "valid_from": valid_from,
                    "valid_to": valid_to,
                    "document_no": doc,
                }, piece)


LAYER_REGIME_ZH = {c.value: c.zh for c in LAYERS["grazing_bans"].get_field("regime").choices}
ECO_TYPE_ZH = {c.value: c.zh for c in LAYERS["eco_projects"].get_field("project_type").choices}


def _caragana(town: Township, rng: np.random.Generator, villages: list[tuple],
              parcels: int | None) -> None:
    areas = np.array([geodesic_area_m2(g) for _, _, g in villages])
    total = parcels if parcels is not None else int(rng.integers(300, 601))
    # a default township plants on a sample of a coarse fabric; benchmarks fill it all
    fabric_size = total if parcels is not None else 20_000
    n = 0
    for (_name, code, geom), share in zip(villages, areas / areas.sum(), strict=True):
        cells = synth.parcel_fabric(geom, max(1, round(fabric_size * share)), rng)
        if parcels is None:
            keep = min(len(cells), max(1, round(total * share)))
            cells = cells[np.sort(rng.choice(len(cells), keep, replace=False))]
        years = rng.integers(2015, 2023, len(cells))
        for cell, year in zip(cells, years, strict=True):
            n += 1
            year = int(year)
            method = str(rng.choice(["enclosure", "restoration", "replacement"],
                                    p=[0.5, 0.3, 0.2] if year >= 2020 else [0.6, 0.4, 0.0]))
            drought = 0.15 if year == 2021 else 0.0
            town.add("caragana_plots", {
                "code": f"NT-{year}-{n:07d}",
                "village_code": code,
                "planted_year": year,
                "method": method,
                "seedlings": int(_mu(cell) * rng.uniform(90, 130)) if parcels is None
                else int(rng.integers(500, 20_000)),
                "survival_rate": round(float(np.clip(rng.beta(8, 2.5) - drought, 0.05, 1)), 3),
                "contractor": str(rng.choice(CONTRACTORS)),
                "inspected_on": _day(rng, date(year + 1, 9, 1), date(year + 1, 10, 31)),
            }, cell)


@dataclass
class _Lease:
    geom: BaseGeometry
    purpose: str
    kind: str
    lessee: str
    project: str
    years: tuple[int, int]


def _lease_candidates(rng: np.random.Generator, outline: BaseGeometry,
                      villages: list[tuple]) -> list[_Lease]:
    west, south, east, north = outline.bounds
    found: list[_Lease] = []
    for project, lessee, y in (("国电双维铁路", "国电双维铁路有限公司", 0.35),
                               ("鄂上铁路", "鄂上铁路有限责任公司", 0.62)):
        lat = south + (north - south) * y
        line = LineString([(west - 0.05, lat + rng.uniform(-0.03, 0.03)),
                           ((west + east) / 2, lat + rng.uniform(-0.05, 0.05)),
                           (east + 0.05, lat + rng.uniform(-0.03, 0.03))])
        found.append(_Lease(synth.strip(line, 80), "railway", "temporary_use", lessee,
                            project, (2, 4)))
    for project, lessee, count, size in (
        ("京能光伏发电", "京能（鄂托克前旗）新能源有限公司", 10, (1200, 2600)),
        ("深能光伏发电", "深能北方（鄂托克前旗）能源开发有限公司", 6, (1000, 2200)),
    ):
        for pt in synth.random_points(outline, count, rng):
            w, h = rng.uniform(*size, 2)
            found.append(_Lease(synth.rectangle((pt.x, pt.y), w, h, rng.uniform(-8, 8)),
                                "solar", "lease", lessee, project, (20, 25)))
    for pt in synth.random_points(outline, 12, rng):
        found.append(_Lease(synth.rectangle((pt.x, pt.y), 300, 300, rng.uniform(0, 90)),
                            "wind", "lease", "国家电投内蒙古新能源有限公司", "500万千瓦绿色能源示范基地风电",
                            (20, 25)))
    for pt in synth.random_points(outline, 70, rng):
        s = rng.uniform(80, 200)
        found.append(_Lease(synth.rectangle((pt.x, pt.y), s, s, rng.uniform(0, 90)),
                            "oil_gas", "temporary_use", "中国石油长庆油田分公司", "油气勘探", (1, 3)))
    for pt in synth.random_points(outline, 6, rng):
        found.append(_Lease(synth.rectangle((pt.x, pt.y), *rng.uniform(600, 1500, 2)),
                            "industrial", "acquisition", "上海庙经济开发区管委会", "工业园区收储",
                            (0, 0)))
    for pt in synth.random_points(outline, 4, rng):
        found.append(_Lease(synth.rectangle((pt.x, pt.y), *rng.uniform(800, 1600, 2)),
                            "mining", "lease", str(rng.choice(MINES)), "煤矿工业场地", (10, 30)))
    southern = [g for _, _, g in villages[PASTORAL:]]
    for geom in southern:
        for cell in synth.parcel_fabric(geom, 300, rng)[:6]:
            purpose = str(rng.choice(["farming", "grazing"]))
            found.append(_Lease(cell, purpose, "lease", str(rng.choice(HERDERS)),
                                "土地流转", (5, 15)))
    return found


def _leases(town: Township, rng: np.random.Generator, villages: list[tuple],
            outline: BaseGeometry) -> None:
    placed: list[BaseGeometry] = []
    n = 0
    for cand in _lease_candidates(rng, outline, villages):
        for _, code, vgeom in villages:  # one lease per village the land lies in
            piece = cand.geom.intersection(vgeom)
            parts = [p for p in shapely.get_parts(piece) if p.geom_type == "Polygon"
                     and geodesic_area_m2(p) > 2_000]
            if not parts:
                continue
            geom = shapely.make_valid(shapely.MultiPolygon(parts))
            if any(geom.intersects(other) for other in placed):
                continue
            placed.append(geom)
            n += 1
            start = _day(rng, date(2015, 1, 1), date(2024, 6, 30))
            lo, hi = cand.years
            end = None if hi == 0 else start + timedelta(days=365 * int(rng.integers(lo, hi + 1)))
            if n % 12 == 0 and end is not None:  # some expire soon after the demo date
                end = DEMO_AS_OF + timedelta(days=int(rng.integers(5, 120)))
            status = "active" if end is None or end >= DEMO_AS_OF else "expired"
            if status == "active" and rng.random() < 0.03:
                status = "terminated"
            rent = None if cand.kind == "acquisition" else round(
                _mu(geom) * float(rng.uniform(25, 90)), -1)
            town.add("land_leases", {
                "code": f"ZL-{n:04d}",
                "village_code": code,
                "lessee": cand.lessee,
                "project": cand.project,
                "purpose": cand.purpose,
                "kind": cand.kind,
                "start_date": start,
                "end_date": end,
                "annual_rent_yuan": rent,
                "contract_no": f"QQ-ZL-{start.year}-{n:04d}",
                "status": status,
            }, geom)


#: (project type, share): grassland restoration leads in the pastoral north.
ECO_TYPES = (("grassland_restoration", 0.4), ("soil_water", 0.2), ("sand_control", 0.3),
             ("afforestation", 0.1))
WATERSHEDS = ("哈沙图嘎查", "特布德嘎查")


def _eco_projects(town: Township, rng: np.random.Generator, villages: list[tuple]) -> None:
    """Project areas, then fences around the grassland ones and along the pastoral gachas."""
    types = [t for t, _ in ECO_TYPES]
    shares = [p for _, p in ECO_TYPES]
    n = f = 0
    for i, (name, code, geom) in enumerate(villages):
        avoid = shapely.union_all(town.geoms.get("watersheds", [])) if "watersheds" in town.geoms else None
        count = int(rng.integers(3, 6)) if i < PASTORAL else int(rng.integers(0, 3))
        for blob in synth.blobs(geom, count, rng, min_area_m2=3e5, max_area_m2=4e6, avoid=avoid):
            n += 1
            kind = str(rng.choice(types, p=shares))
            year = int(rng.integers(2018, 2023))
            status = "planned" if year == 2022 and rng.random() < 0.5 else str(
                rng.choice(["in_progress", "completed", "accepted"], p=[0.2, 0.4, 0.4]))
            mu = _mu(blob)
            town.add("eco_projects", {
                "code": f"LC-{year}-{n:03d}",
                "village_code": code,
                "name": f"{name}{ECO_TYPE_ZH[kind]}工程",
                "project_type": kind,
                "year": year,
                "investment_wan_yuan": round(mu * float(rng.uniform(0.02, 0.08)), 1),
                "target_area_mu": round(mu * float(rng.uniform(0.9, 1.1)), -1),
                "status": status,
            }, blob)
            if kind in ("grassland_restoration", "sand_control") and status != "planned":
                f += 1  # the fence closing the restored area
                ring = shapely.MultiLineString([blob.exterior.coords])
                town.add("fence_lines", {
                    "code": f"WL-{year}-{f:03d}",
                    "village_code": code,
                    "project": f"{year}年黄土高原水土流失综合治理工程网围栏项目",
                    "built_year": year,
                    "fence_type": str(rng.choice(["wire_mesh", "woven_mesh", "welded_mesh"],
                                                 p=[0.5, 0.35, 0.15])),
                    "contractor": str(rng.choice(CONTRACTORS)),
                }, ring)
    for name, code, geom in villages[:PASTORAL]:  # pasture boundary fences across each gacha
        for _ in range(int(rng.integers(2, 5))):
            f += 1
            line = _fence_across(geom, rng)
            if line is None:
                continue
            year = int(rng.integers(2015, 2023))
            town.add("fence_lines", {
                "code": f"WL-{year}-{f:03d}",
                "village_code": code,
                "project": f"{name}草原围栏建设项目",
                "built_year": year,
                "fence_type": str(rng.choice(["wire_mesh", "woven_mesh", "rail"], p=[0.6, 0.3, 0.1])),
                "contractor": str(rng.choice(CONTRACTORS)),
            }, line)


def _fence_across(geom: BaseGeometry, rng: np.random.Generator) -> BaseGeometry | None:
    """A gently bending fence inside ``geom``: a chord through it, cut to the gacha."""
    x0, y0, x1, y1 = geom.bounds
    cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
    angle = rng.uniform(0, np.pi)
    half = 0.3 * max(x1 - x0, y1 - y0)
    ts = np.linspace(-1, 1, 9)
    bend = rng.normal(0, 0.004, len(ts))
    xs = cx + ts * half * np.cos(angle) - bend * np.sin(angle)
    ys = cy + ts * half * np.sin(angle) + bend * np.cos(angle)
    inside = LineString(zip(xs, ys, strict=True)).intersection(geom.buffer(-0.002))
    parts = [p for p in shapely.get_parts(inside) if p.geom_type == "LineString" and p.length > 0.005]
    return shapely.MultiLineString(parts) if parts else None


def _watersheds(town: Township, rng: np.random.Generator, villages: dict[str, tuple]) -> None:
    """The 哈沙图 and 特布德 clean small watersheds the work report starts."""
    n = 0
    for name in WATERSHEDS:
        code, geom = villages[name]
        for blob in synth.blobs(geom, 1, rng, min_area_m2=8e6, max_area_m2=1.5e7):
            n += 1
            town.add("watersheds", {
                "code": f"XLY-{n:02d}",
                "village_code": code,
                "name": f"{name[:3]}清洁小流域",
                "treatment_plan": "梯田、淤地坝、封育与人工种草相结合的水土保持综合治理",
                "year": 2022,
            }, blob)


#: What the demo's change patches went through: (status path, notes).
PATCH_STORIES = (
    ((), ()),
    ((), ()),
    (("verified",), ("现场核实：开垦种植",)),
    (("verified", "rectified"), ("现场核实：违规建设", "已拆除并补植柠条")),
    (("false_alarm",), ("云影，非植被变化",)),
    (("verified",), ("现场核实：过度放牧",)),
    (("verified", "rectified"), ("现场核实：采砂", "已回填并围封")),
    ((), ()),
)


def _change_patches(town: Township, rng: np.random.Generator, villages: list[tuple]) -> None:
    """A few patches found between July 2020 and July 2024 images, some checked and rectified."""
    for n, (path, notes) in enumerate(PATCH_STORIES, start=1):
        _, code, geom = villages[int(rng.integers(0, len(villages)))]
        found = synth.blobs(geom, 1, rng, min_area_m2=2e4, max_area_m2=2e5)
        if not found:
            continue
        kind = "loss" if n % 3 else "gain"
        town.add("change_patches", {
            "code": f"BH-2024-{n:04d}", "village_code": code, "kind": kind,
            "mean_change": round(float(rng.uniform(0.18, 0.4)) * (-1 if kind == "loss" else 1), 2),
            "threshold": 0.15, "before_date": date(2020, 7, 15), "after_date": date(2024, 7, 15),
            "detected_on": date(2024, 8, 1), "status": "pending", "status_note": "遥感比对发现",
        }, found[0])
        town.steps.extend((f"BH-2024-{n:04d}", s, note) for s, note in zip(path, notes, strict=True))


def generate(seed: int = 20220701, parcels: int | None = None) -> Township:
    """Build the demo township in memory; the same seed gives the same features."""
    rng = np.random.default_rng(seed)
    town = Township()
    villages = _villages(town, rng)
    by_name = {name: (code, geom) for (name, _), (code, geom) in zip(VILLAGES, villages,
                                                                     strict=True)}
    named = [(name, code, geom) for (name, _), (code, geom) in zip(VILLAGES, villages,
                                                                   strict=True)]
    outline = shapely.union_all([g for _, g in villages])
    _subsidence(town, rng, by_name)
    _grazing_bans(town, rng, named[:PASTORAL])
    _caragana(town, rng, named, parcels)
    _leases(town, rng, named, outline)
    # the layers added later draw from a stream of their own: the first five stay as they were
    later = np.random.default_rng([seed, 2])
    _watersheds(town, later, by_name)
    _eco_projects(town, later, named)
    _change_patches(town, np.random.default_rng([seed, 3]), named)
    return town


def load_demo(
    url: URL,
    *,
    seed: int = 20220701,
    parcels: int | None = None,
    replace: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, int]:
    """Generate the township and write it in one transaction; returns counts per layer."""
    town = generate(seed, parcels)
    engine = engine_for(url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        if replace:
            tables = ", ".join(reversed(LAYERS))
            conn.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        for layer_id, layer in LAYERS.items():
            rows, geoms = town.rows.get(layer_id, []), town.geoms.get(layer_id, [])
            total = len(rows)

            def step(k: int, layer_id: str = layer_id, total: int = total) -> None:
                if progress is not None:
                    progress(layer_id, k, total)

            copy_features(conn, layer, rows, geoms, progress=step)
        # steps of the workflow, as staff took them (the database records each one)
        conn.execute(sa.text("SELECT set_config('landeco.who', 'demo', true)"))
        for code, status, note in town.steps:
            conn.execute(sa.text("UPDATE change_patches SET status = :s, status_note = :n WHERE code = :c"),
                         {"s": status, "n": note, "c": code})
        for layer_id in LAYERS:
            conn.execute(sa.text(f"ANALYZE {layer_id}"))
    return town.counts()
