"""Import a surveyor-sized zipped shapefile with landeco and with ogr2ogr; time and peak memory.

Usage: python -m bench.import_ [--repeat=R] [--before=DIR] [N ...]   (default: 3 repeats of 100000)

``--before=DIR`` also runs ``landeco import`` from another checkout (e.g. ``git archive`` of
an older commit unpacked in DIR, with this venv), alternating with the others, for a
before/after in the same run.

The file is the demo generator's N caragana parcels in CGCS2000 / 3-degree GK CM 108E
(EPSG:4545), GBK DBF without ``.cpg``, Chinese column names, zipped (bench/data/, kept).
``landeco import`` (full validation: encoding, CRS, geometry checks and repairs, reprojection,
column mapping and coercion, codes, villages, overlaps, history, overview cells, one
transaction) runs against ``ogr2ogr -append`` of the same file into a copy of the same layer
table in a second throwaway database (landeco's schema, the villages loaded, the layer's own
triggers - history, cells, versions - dropped: same generated areas, indexes, foreign key and
checks), in the same run, alternating R times; the table shows median times. ogr2ogr is
given what its SQL can say (the columns renamed, the Chinese method label and date turned
into the stored values, every column set so that GDAL 3.6 COPYs instead of one INSERT per
row - with a column left to its default it falls back to INSERT, about 6× slower) and
checks nothing itself; the table's CHECKs and foreign key refuse what it cannot load.
Each runs in its own process; peak memory is that process's maximum resident set
(/usr/bin/time). Two more columns: ``ogr2ogr`` into a new bare table (no areas, indexes or
constraints: what an ogr2ogr user usually runs), and "COPY only", the same rows COPYed from
memory into landeco's layer table with its triggers (no reading and no checks).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

import geopandas as gpd
import sqlalchemy as sa

from layers.demo import generate
from layers.registry import get_layer
from layers.settings import Settings
from layers.store.database import create_database, database_url, drop_database, engine_for
from layers.store.load import copy_features
from layers.store.migrate import upgrade

DATA = Path(__file__).parent / "data"
COLUMNS = {"code": "地块编号", "village_code": "嘎查村代码", "planted_year": "种植年份", "method": "种植方式",
           "seedlings": "苗木数量", "survival_rate": "成活率", "contractor": "施工单位",
           "inspected_on": "验收日期", "note": "备注"}
METHOD_ZH = {"enclosure": "划区围封", "restoration": "划区恢复", "replacement": "蒿草换柠条"}


def _ogr_sql() -> str:
    """ogr2ogr's SQLite-dialect SELECT mapping the surveyor's file onto the layer's columns.

    The method's Chinese label becomes its stored value and ``2022年5月3日`` an ISO date; extra,
    created_at, updated_at and the two generated areas get a value so that no column is left
    to a default (GDAL 3.6 then COPYs; the generated columns are skipped in the COPY); the
    township as landeco sends it (migration 0016: its filling trigger is dropped with the others),
    and the id (the key is (id, township_code) since 0016: GDAL no longer takes ``id`` for the
    FID, and would INSERT row by row to leave it to its default: 22 s instead of 2.8 s).
    """
    d = "验收日期"
    month, day = f"instr({d}, '月')", f"instr({d}, '日')"
    date = (f"CASE WHEN {d} IS NULL THEN NULL ELSE printf('%04d-%02d-%02d', "
            f"CAST(substr({d}, 1, 4) AS INTEGER), "
            f"CAST(substr({d}, 6, {month} - 6) AS INTEGER), "
            f"CAST(substr({d}, {month} + 1, {day} - {month} - 1) AS INTEGER)) END")
    method = "CASE 种植方式 " + " ".join(f"WHEN '{zh}' THEN '{v}'" for v, zh in METHOD_ZH.items()) + " END"
    now = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
    cols = {k: v for k, v in COLUMNS.items() if k not in ("method", "inspected_on")}
    return (f"SELECT {', '.join(f'{v} AS {k}' for k, v in cols.items())}, {method} AS method, "
            f"{date} AS inspected_on, '{{}}' AS extra, {now} AS created_at, {now} AS updated_at, "
            f"0 AS area_m2, 0 AS area_mu, coalesce(substr(嘎查村代码, 1, 9), '') AS township_code, "
            f"ROWID + 1 AS id, geometry FROM \"柠条地块\"")


def make_file(n: int) -> tuple[Path, Any]:
    """The zipped shapefile of ``n`` parcels (cached), and the generated township."""
    town = generate(parcels=n)
    target = DATA / f"import_{n}.zip"
    if not target.exists():
        rows = town.rows["caragana_plots"]
        frame = gpd.GeoDataFrame({COLUMNS[k]: [r.get(k) for r in rows] for k in COLUMNS},
                                 geometry=town.geoms["caragana_plots"], crs=4326).to_crs(4545)
        frame["种植方式"] = frame["种植方式"].map(METHOD_ZH)  # surveyors write the Chinese label
        frame["验收日期"] = [d.strftime("%Y年%-m月%-d日") if d else None for d in frame["验收日期"]]
        folder = DATA / f"import_{n}"
        folder.mkdir(parents=True, exist_ok=True)
        shp = folder / "柠条地块.shp"
        frame.to_file(shp, driver="ESRI Shapefile", encoding="GBK")
        shp.with_suffix(".cpg").unlink(missing_ok=True)
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
            for part in folder.iterdir():
                zf.write(part, f"成果/{part.name}")
    return target, town


def _measure(cmd: list[str], env: dict[str, str], cwd: Path | None = None
             ) -> tuple[float, float, subprocess.CompletedProcess]:
    """Wall time (s) and peak RSS (MB) of ``cmd`` run through /usr/bin/time."""
    t = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "MAXRSS %M", *cmd], env=env, capture_output=True,
                          text=True, cwd=cwd)
    wall = time.perf_counter() - t
    rss = next((int(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("MAXRSS")), 0)
    return wall, rss / 1024, proc


def run(n: int, repeat: int, before: Path | None = None) -> dict[str, object]:
    """Both imports of the ``n``-parcel file, alternating ``repeat`` times; medians and peaks."""
    DATA.mkdir(exist_ok=True)
    path, town = make_file(n)
    server = database_url(Settings())
    tag = uuid.uuid4().hex[:8]
    ours = server.set(database=f"landeco_bench_imp_{tag}")
    ogr = server.set(database=f"landeco_bench_ogr_{tag}")
    times_l: list[float] = []
    times_o: list[float] = []
    times_c: list[float] = []
    times_b: list[float] = []
    times_p: list[float] = []
    rss_l = rss_o = rss_p = 0.0
    try:
        create_database(ours)
        upgrade(ours)
        create_database(ogr)
        upgrade(ogr)
        engine = engine_for(ours.render_as_string(hide_password=False))
        engine_o = engine_for(ogr.render_as_string(hide_password=False))
        for e in (engine, engine_o):
            with e.begin() as conn:
                copy_features(conn, get_layer("villages"), town.rows["villages"], town.geoms["villages"])
        with engine_o.begin() as conn:  # the same table, without landeco's own triggers
            for name in conn.scalars(sa.text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND "
                                             "tgrelid = 'caragana_plots'::regclass")).all():
                conn.execute(sa.text(f'DROP TRIGGER "{name}" ON caragana_plots'))
        env = {**os.environ, "LANDECO_DATABASE_URL": ours.render_as_string(hide_password=False)}
        cmd = [str(Path(sys.executable).parent / "landeco"), "import", str(path), "--layer", "caragana_plots",
               "--json"]
        u = ogr
        pg = (f"PG:host={u.host} port={u.port} dbname={u.database} user={u.username} "
              f"password={u.password or ''}")
        source = f"/vsizip/{path}/成果/柠条地块.shp"
        cmd_o = ["ogr2ogr", "-append", "-f", "PostgreSQL", pg, source, "-dialect", "SQLite", "-sql",
                 _ogr_sql(),
                 "-nln", "caragana_plots", "-t_srs", "EPSG:4326", "-nlt", "MULTIPOLYGON",
                 "--config", "PG_USE_COPY", "YES"]
        cmd_b = ["ogr2ogr", "-f", "PostgreSQL", pg, source, "-nln", "bare_plots", "-lco",
                 "GEOMETRY_NAME=geom", "-t_srs", "EPSG:4326", "-nlt", "PROMOTE_TO_MULTI",
                 "--config", "PG_USE_COPY", "YES"]
        env_o = {**os.environ, "PG_USE_COPY": "YES", "SHAPE_ENCODING": "CP936"}
        main = "import sys; from api.cli import main; sys.argv[0] = 'landeco'; main()"
        cmd_p = [sys.executable, "-c", main, *cmd[1:]]
        env_p = {**env, "PYTHONPATH": str(before)}
        for _ in range(repeat):
            if before is not None:
                with engine.begin() as conn:
                    conn.execute(sa.text("TRUNCATE caragana_plots"))
                wall, rss, proc = _measure(cmd_p, env_p, before)
                print(f"landeco import before ({before}): {wall:.1f} s, {rss:.0f} MB, exit {proc.returncode}",
                      file=sys.stderr)
                times_p.append(wall)
                rss_p = max(rss_p, rss)
            with engine.begin() as conn:
                conn.execute(sa.text("TRUNCATE caragana_plots"))
            wall, rss, proc = _measure(cmd, env)
            report = json.loads(proc.stdout) if proc.stdout.strip() else {"error": proc.stderr[-2000:]}
            print(f"landeco import: {wall:.1f} s, {rss:.0f} MB, exit {proc.returncode}, "
                  f"{report.get('counts')}", file=sys.stderr)
            times_l.append(wall)
            rss_l = max(rss_l, rss)
            with engine.connect() as conn:
                rows_l = conn.scalar(sa.text("SELECT count(*) FROM caragana_plots"))
            with engine_o.begin() as conn:
                conn.execute(sa.text("TRUNCATE caragana_plots"))
            wall, rss, proc_o = _measure(cmd_o, env_o)
            if proc_o.returncode:
                print(proc_o.stderr[-2000:], file=sys.stderr)
            print(f"ogr2ogr -append into the layer table: {wall:.1f} s, {rss:.0f} MB", file=sys.stderr)
            times_o.append(wall)
            rss_o = max(rss_o, rss)
            with engine_o.begin() as conn:
                conn.execute(sa.text("DROP TABLE IF EXISTS bare_plots"))
            wall, _rss, proc_b = _measure(cmd_b, env_o)
            if proc_b.returncode:
                print(proc_b.stderr[-2000:], file=sys.stderr)
            print(f"ogr2ogr into a new bare table: {wall:.1f} s", file=sys.stderr)
            times_b.append(wall)
            # the floor: COPY of the same rows into the same layer table, no reading, no checks
            with engine.begin() as conn:
                conn.execute(sa.text("TRUNCATE caragana_plots"))
            t = time.perf_counter()
            with engine.begin() as conn:
                copy_features(conn, get_layer("caragana_plots"), town.rows["caragana_plots"],
                              town.geoms["caragana_plots"])
            times_c.append(time.perf_counter() - t)
            print(f"COPY only: {times_c[-1]:.1f} s", file=sys.stderr)
            with engine_o.connect() as conn:
                rows_o = conn.scalar(sa.text("SELECT count(*) FROM caragana_plots"))
    finally:
        for url in (ours, ogr):
            engine_for(url.render_as_string(hide_password=False)).dispose()
            drop_database(url)
    return {"n": n, "landeco_s": statistics.median(times_l), "landeco_mb": rss_l, "landeco_rows": rows_l,
            "ogr_s": statistics.median(times_o), "copy_s": statistics.median(times_c), "ogr_mb": rss_o,
            "bare_s": statistics.median(times_b), "rounds": (times_l, times_o, times_p),
            "before_s": statistics.median(times_p) if times_p else None, "before_mb": rss_p,
            "ogr_rows": rows_o,
            "file_mb": path.stat().st_size / 1e6, "repeat": repeat,
            "problems": report.get("problem_codes", report.get("error"))}


def main(argv: list[str]) -> None:
    """Run for each N and print one table."""
    repeat = 3
    before = None
    while argv and argv[0].startswith("--"):
        name, _, value = argv.pop(0).partition("=")
        if name == "--repeat":
            repeat = int(value)
        elif name == "--before":
            before = Path(value).resolve()
    sizes = [int(a) for a in argv] or [100_000]
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} at the start", file=sys.stderr)
    results = [run(n, repeat, before) for n in sizes]
    version = subprocess.run(["ogr2ogr", "--version"], capture_output=True, text=True).stdout.strip()
    print(f"\nimport benchmark — {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, ogr2ogr {version}")
    print(f"median of {results[0]['repeat']} alternating runs each")
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} at the end")
    print(f"{'parcels':>9} {'zip MB':>7} | {'landeco s':>9} {'peak MB':>8} {'rows':>8} | "
          f"{'ogr2ogr -append s':>17} {'peak MB':>8} {'rows':>8} | {'time ratio':>10} | "
          f"{'ogr2ogr bare s':>14} | {'COPY only s':>11}")
    for r in results:
        print(f"{r['n']:>9,} {r['file_mb']:>7.1f} | {r['landeco_s']:>9.2f} {r['landeco_mb']:>8.0f} "
              f"{r['landeco_rows']:>8,} | {r['ogr_s']:>17.2f} {r['ogr_mb']:>8.0f} {r['ogr_rows']:>8,} | "
              f"{r['landeco_s'] / r['ogr_s']:>9.2f}x | {r['bare_s']:>14.2f} | {r['copy_s']:>11.2f}")
        times_l, times_o, times_p = r["rounds"]
        print(f"          rounds: landeco {' '.join(f'{t:.2f}' for t in times_l)}; "
              f"ogr2ogr -append {' '.join(f'{t:.2f}' for t in times_o)}")
        if times_p:
            print(f"          before: median {r['before_s']:.2f} s ({r['before_s'] / r['ogr_s']:.2f}x), peak "
                  f"{r['before_mb']:.0f} MB, rounds {' '.join(f'{t:.2f}' for t in times_p)}")
        if r["problems"]:
            print(f"          problems: {r['problems']}")


if __name__ == "__main__":
    main(sys.argv[1:])
