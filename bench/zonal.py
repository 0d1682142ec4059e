"""Zonal statistics of 10 000 plots over a 10 000 × 10 000 raster: landeco against the rest.

Usage: python -m bench.zonal [--plots 10000] [--size 10000] [--repeat 3] [--no-rasterstats]

Generated inputs, kept for later runs: a float32 raster of ``size`` × ``size`` pixels of 10 m in
CGCS2000 / 3-degree GK CM 108E (EPSG:4545) over the demo township, with a band of nodata (a cloud
mask) across it (bench/data/), added to the database ``landeco_bench_zonal_<plots>`` with
``add_raster`` (stored as landeco stores every raster: a deflated COG); and the demo township
with ``plots`` caragana plots (lon/lat) in that database. Three runs over the same COG and the
same plots, each in a process of its own (peak resident memory is that process's maximum):

- landeco: :func:`layers.zonal.run_zonal`, the body of the ``zonal`` job (plots read from
  PostGIS, reprojected to the raster, through :mod:`gis.zonal` in batches, rows upserted);
- exactextract alone: ``exact_extract(cog, plots, ops)`` with its defaults, the plots given as a
  GeoDataFrame already in the raster's CRS and in the job's order (reading them is not timed);
- rasterstats: ``zonal_stats`` on the same GeoDataFrame (pixel centres, not weighted).

landeco and exactextract alternate ``repeat`` times; the table shows medians. landeco's rows
(read back from the database) are compared with exactextract's, feature by feature.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(__file__).parent / "data"
CRS = "EPSG:4545"
RES = 10.0
NODATA = -9999.0
STATS = ("mean", "median", "min", "max", "stdev", "area_m2", "area_mu")
#: exactextract's names for what landeco stores
EXACT_OPS = ["mean", "median", "min", "max", "stdev", "count"]


def make_raster(size: int) -> Path:
    """An NDVI-like float32 raster of ``size`` × ``size`` pixels over the township (cached)."""
    import rasterio
    from affine import Affine
    from pyproj import Transformer

    from gis.synth import TOWNSHIP_CENTRE

    path = DATA / f"zonal_{size}.tif"
    if path.exists():
        return path
    DATA.mkdir(parents=True, exist_ok=True)
    x, y = Transformer.from_crs("EPSG:4326", CRS, always_xy=True).transform(*TOWNSHIP_CENTRE)
    half = size * RES / 2
    transform = Affine(RES, 0, math.floor(x - half), 0, -RES, math.floor(y + half))
    rng = np.random.default_rng(12)
    tmp = path.with_suffix(".part")
    with rasterio.open(tmp, "w", driver="GTiff", width=size, height=size, count=1, dtype="float32",
                       crs=CRS, transform=transform, nodata=NODATA, tiled=True, blockxsize=512,
                       blockysize=512, compress="deflate", predictor=3, BIGTIFF="IF_SAFER") as ds:
        cols = np.arange(size, dtype="float32")
        step = 512
        for top in range(0, size, step):
            rows = np.arange(top, min(top + step, size), dtype="float32")[:, None]
            field = 0.35 + 0.2 * np.sin(cols / 700.0) * np.cos(rows / 900.0)
            block = (field + rng.normal(0, 0.05, (len(rows), size))).astype("float32")
            # a cloud band: nodata across the raster
            cloud = (rows >= size * 0.40) & (rows < size * 0.43)
            block[np.broadcast_to(cloud, block.shape)] = NODATA
            ds.write(block, 1, window=rasterio.windows.Window(0, top, size, len(rows)))
    tmp.rename(path)
    return path


def make_plots(n: int) -> Any:
    """The demo generator's ``n`` caragana plots as a GeoDataFrame in lon/lat, index 1..n."""
    import geopandas as gpd

    from layers.demo import generate

    town = generate(parcels=n)
    frame = gpd.GeoDataFrame({"planted_year": [r["planted_year"] for r in town.rows["caragana_plots"]]},
                             geometry=town.geoms["caragana_plots"], crs=4326)
    frame.index = np.arange(1, len(frame) + 1)
    return frame


# -- the database and the registered raster ------------------------------------------------------

def bench_url(plots: int) -> Any:
    from layers.settings import Settings
    from layers.store.database import database_url

    return database_url(Settings()).set(database=f"landeco_bench_zonal_{plots}")


def prepare(plots: int, size: int) -> tuple[Any, int]:
    """The benchmark database (made once: demo township with ``plots`` plots, the raster added)."""
    import sqlalchemy as sa

    from layers.demo import load_demo
    from layers.rasters import add_raster
    from layers.settings import Settings
    from layers.store.database import create_database, engine_for
    from layers.store.migrate import upgrade

    url = bench_url(plots)
    text = url.render_as_string(hide_password=False)
    try:
        engine = engine_for(text)
        with engine.connect() as conn:
            found = conn.execute(sa.text("SELECT id FROM rasters WHERE name = :n"),
                                 {"n": f"zonal_{size}.tif"}).scalar()
        if found is not None:
            return url, int(found)
    except sa.exc.OperationalError:
        create_database(url)
    upgrade(url)
    engine = engine_for(text)
    with engine.connect() as conn:
        empty = conn.execute(sa.text("SELECT count(*) FROM caragana_plots")).scalar() == 0
    if empty:
        load_demo(url, parcels=plots)
    raster = add_raster(engine, Settings(), make_raster(size), kind="ndvi", acquired="2022-07-15",
                        source="bench.zonal (generated)")
    return url, raster.id


# -- one run, in a process of its own --------------------------------------------------------------

def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_s() -> float:
    """CPU seconds of this process (user + system): less shaken than wall time on a shared machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _plots_in_job_order(engine: Any, raster: Any) -> Any:
    """The plots as the job reads them (same statement, same order), in the raster's CRS."""
    import geopandas as gpd
    import shapely

    from layers.registry import get_layer
    from layers.zonal import _features_sql

    sql, _, params = _features_sql(get_layer("caragana_plots"), None)
    params["footprint"] = shapely.to_wkb(raster.footprint)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(sql, params).all()
    frame = gpd.GeoDataFrame({"fid": [r[0] for r in rows]},
                             geometry=shapely.from_wkb([bytes(r[1]) for r in rows]), crs=4326)
    import rasterio
    with rasterio.open(raster.uri) as ds:
        return frame.to_crs(ds.crs)


def run_one(which: str, plots: int, raster_id: int, out: Path) -> dict[str, float]:
    """Time one tool; its statistics saved to ``out`` (npz: fid and one array per statistic)."""
    import sqlalchemy as sa

    from layers.rasters import get_raster
    from layers.store.database import engine_for

    engine = engine_for(bench_url(plots).render_as_string(hide_password=False))
    with engine.connect() as conn:
        raster = get_raster(conn, raster_id)
    if which == "landeco":
        from layers.zonal import run_zonal

        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM zonal_stats WHERE raster_id = :r"), {"r": raster_id})
        before = _peak_mb()
        t, cpu = time.perf_counter(), _cpu_s()
        summary = run_zonal(engine, raster_id=raster_id, layer="caragana_plots", stats=list(STATS))
        seconds, cpu = time.perf_counter() - t, _cpu_s() - cpu
        peak = _peak_mb()
        with engine.connect() as conn:
            rows = conn.execute(sa.text(
                f"SELECT feature_id, {', '.join(STATS)} FROM zonal_stats WHERE raster_id = :r "
                "AND layer = 'caragana_plots' AND zone = 'feature' ORDER BY feature_id"),
                {"r": raster_id}).all()
        result = {"fid": np.array([r[0] for r in rows])}
        for i, name in enumerate(STATS):
            result[name] = np.array([np.nan if r[i + 1] is None else r[i + 1] for r in rows], dtype="float64")
        features = summary["features"]
    else:
        frame = _plots_in_job_order(engine, raster)
        before = _peak_mb()
        t, cpu = time.perf_counter(), _cpu_s()
        if which == "exactextract":
            from exactextract import exact_extract

            got = exact_extract(raster.uri, frame, EXACT_OPS, include_cols=["fid"], output="pandas")
        else:
            from rasterstats import zonal_stats

            got = zonal_stats(frame.geometry, raster.uri, nodata=NODATA,
                              stats=["mean", "median", "min", "max", "std", "count"])
        seconds, cpu = time.perf_counter() - t, _cpu_s() - cpu
        peak = _peak_mb()
        if which == "exactextract":
            got = got.sort_values("fid")
            result = {"fid": got["fid"].to_numpy()}
            for name in ("mean", "median", "min", "max", "stdev"):
                result[name] = got[name].to_numpy(dtype="float64")
            result["area_m2"] = got["count"].to_numpy(dtype="float64") * abs(raster.res_x * raster.res_y)
        else:
            order = np.argsort(frame["fid"].to_numpy())
            result = {"fid": frame["fid"].to_numpy()[order]}
            for name, key in (("mean", "mean"), ("median", "median"), ("min", "min"), ("max", "max"),
                              ("stdev", "std")):
                result[name] = np.array([np.nan if got[i][key] is None else got[i][key] for i in order],
                                        dtype="float64")
        features = len(frame)
    np.savez(out, **result)
    return {"seconds": seconds, "cpu_s": cpu, "peak_mb": peak, "before_mb": before, "features": features}


def _child(which: str, plots: int, raster_id: int, out: Path) -> dict[str, float]:
    proc = subprocess.run([sys.executable, "-m", "bench.zonal", "--one", which, "--plots", str(plots),
                           "--raster-id", str(raster_id), "--out", str(out)],
                          capture_output=True, text=True, cwd=Path(__file__).parents[1])
    if proc.returncode != 0:
        raise RuntimeError(f"{which} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- comparing ------------------------------------------------------------------------------------

def compare(a: dict[str, np.ndarray], b: dict[str, np.ndarray], names: tuple[str, ...]) -> dict[str, Any]:
    """Largest differences of ``a`` from ``b`` over the features both have; nulls must agree."""
    common, ia, ib = np.intersect1d(a["fid"], b["fid"], return_indices=True)
    out: dict[str, Any] = {"features": len(common),
                           "only_one": len(a["fid"]) + len(b["fid"]) - 2 * len(common)}
    for name in names:
        x, y = a[name][ia], b[name][ib]
        nulls = np.isnan(x) != np.isnan(y)
        both = ~np.isnan(x) & ~np.isnan(y)
        diff = np.abs(x[both] - y[both])
        scale = np.maximum(np.abs(y[both]), 1.0) if name == "area_m2" else 1.0
        out[name] = {"max_abs": float(diff.max()) if diff.size else 0.0,
                     "max_rel": float((diff / scale).max()) if diff.size else 0.0,
                     "null_mismatch": int(nulls.sum()), "nulls": int(np.isnan(y).sum())}
    return out


def main(argv: list[str] | None = None) -> None:
    """Prepare, run the three (landeco and exactextract alternating), compare, print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.zonal")
    parser.add_argument("--plots", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-rasterstats", action="store_true")
    parser.add_argument("--one", choices=("landeco", "exactextract", "rasterstats"), help=argparse.SUPPRESS)
    parser.add_argument("--raster-id", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one, args.plots, args.raster_id, args.out)))
        return
    t = time.perf_counter()
    _, raster_id = prepare(args.plots, args.size)
    print(f"inputs ready in {time.perf_counter() - t:.0f} s (raster {raster_id}, "
          f"{args.size:,} × {args.size:,} float32)", flush=True)
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    runs: dict[str, list[dict[str, float]]] = {"landeco": [], "exactextract": [], "rasterstats": []}
    for i in range(args.repeat):
        for which in (("landeco", "exactextract") if i % 2 == 0 else ("exactextract", "landeco")):
            runs[which].append(_child(which, args.plots, raster_id, out / f"zonal_{which}.npz"))
            print(f"  {which}: {runs[which][-1]['seconds']:.2f} s ({runs[which][-1]['cpu_s']:.2f} s CPU)",
                  flush=True)
    if not args.no_rasterstats:
        runs["rasterstats"].append(_child("rasterstats", args.plots, raster_id,
                                          out / "zonal_rasterstats.npz"))
        print(f"  rasterstats: {runs['rasterstats'][-1]['seconds']:.2f} s", flush=True)
    got = {k: dict(np.load(out / f"zonal_{k}.npz")) for k in runs if runs[k]}
    same = compare(got["landeco"], got["exactextract"], ("mean", "median", "min", "max", "stdev", "area_m2"))
    base = statistics.median(r["seconds"] for r in runs["exactextract"])
    base_cpu = statistics.median(r["cpu_s"] for r in runs["exactextract"])
    print()
    print(f"{runs['landeco'][0]['features']:,} plots, {args.size:,} × {args.size:,} float32 raster (COG), "
          f"median of {args.repeat}; load average {os.getloadavg()[0]:.1f}")
    print()
    print("| run | seconds (median) | runs (s) | CPU s (median) | plots/s | peak RSS (MB) "
          "| RSS before the run (MB) | ÷ exactextract (wall) | ÷ exactextract (CPU) |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for which, label in (("landeco", "landeco (`zonal` job body: read, reproject, extract, store)"),
                         ("exactextract", "exactextract alone"), ("rasterstats", "rasterstats")):
        if not runs[which]:
            continue
        secs = [r["seconds"] for r in runs[which]]
        med = statistics.median(secs)
        cpu = statistics.median(r["cpu_s"] for r in runs[which])
        print(f"| {label} | {med:.2f} | {' '.join(f'{s:.2f}' for s in secs)} | {cpu:.2f} "
              f"| {runs[which][0]['features'] / med:,.0f} | {max(r['peak_mb'] for r in runs[which]):,.0f} "
              f"| {max(r['before_mb'] for r in runs[which]):,.0f} | {med / base:.2f}× "
              f"| {cpu / base_cpu:.2f}× |")
    print()
    worst = max(same[n]["max_abs"] for n in ("mean", "median", "min", "max", "stdev"))
    mismatched = sum(same[n]["null_mismatch"] for n in ("mean", "median", "min", "max", "stdev", "area_m2"))
    equal = (worst <= 1e-6 and mismatched == 0 and same["only_one"] == 0
             and same["area_m2"]["max_rel"] <= 1e-6)
    print(f"landeco = exactextract: {same['features']:,} plots in both ({same['only_one']} in one only), "
          f"largest |difference| of mean/median/min/max/stdev {worst:.2e}, of area "
          f"{same['area_m2']['max_rel']:.2e} (relative), nulls disagreeing {mismatched}, plots over nodata "
          f"{same['mean']['nulls']:,} → {'EQUAL to 1e-6' if equal else 'DIFFERENT'}")
    if runs["rasterstats"]:
        rs = compare(got["rasterstats"], got["exactextract"], ("mean",))
        print(f"rasterstats against exactextract (pixel centres, not coverage): mean differs by up to "
              f"{rs['mean']['max_abs']:.3f}")


if __name__ == "__main__":
    main()
