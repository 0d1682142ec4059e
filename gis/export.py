"""Writing the files planners open: GeoJSON, GeoPackage, zipped shapefile, CSV, XLSX.

Vector formats go through GDAL (pyogrio); XLSX through openpyxl. Shapefiles carry a
``.cpg`` naming their encoding (``UTF-8``, or ``936`` for GBK, which ArcGIS and QGIS both
read) and a ``.prj`` of the chosen CRS, so Chinese text opens intact.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from gis.errors import InputError

__all__ = ["CRSS", "ENCODINGS", "FORMATS", "write_frames"]

#: format → (file suffix, media type)
FORMATS: dict[str, tuple[str, str]] = {
    "geojson": (".geojson", "application/geo+json"),
    "gpkg": (".gpkg", "application/geopackage+sqlite3"),
    "shp": (".zip", "application/zip"),
    "csv": (".csv", "text/csv; charset=utf-8"),
    "xlsx": (".xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
}
#: CRSs a file may be written in: WGS 84, CGCS2000 geographic, CGCS2000 3° GK CM 108E.
CRSS = (4326, 4490, 4545)
#: shapefile text encodings → the ``.cpg`` written
ENCODINGS = {"utf-8": "UTF-8", "gbk": "936"}


def _check(fmt: str, crs: int, encoding: str) -> None:
    if fmt not in FORMATS:
        raise InputError("unknown_format", f"no export format {fmt!r}", hint=", ".join(FORMATS))
    if crs not in CRSS:
        raise InputError("unsupported_crs", f"EPSG:{crs} is not offered",
                         hint="EPSG:4326 (WGS 84), 4490 (CGCS2000) or 4545 (CGCS2000 GK CM 108E)")
    if encoding not in ENCODINGS:
        raise InputError("unknown_encoding", f"no shapefile encoding {encoding!r}", hint="utf-8 or gbk")


def _chunks(value: gpd.GeoDataFrame | Iterable[gpd.GeoDataFrame], crs: int) -> Iterator[gpd.GeoDataFrame]:
    """The frame, or each frame of an iterable, in ``crs``."""
    for frame in [value] if isinstance(value, gpd.GeoDataFrame) else value:
        yield frame.to_crs(crs)


def _one(frames: dict[str, Iterable[gpd.GeoDataFrame]]) -> gpd.GeoDataFrame:
    """All frames in one, with a ``layer`` column when there are several layers."""
    parts = [(name, chunk) for name, chunks in frames.items() for chunk in chunks]
    several = len(frames) > 1
    joined = pd.concat([c.assign(layer=name) if several else c for name, c in parts], ignore_index=True)
    return gpd.GeoDataFrame(joined, geometry="geometry", crs=parts[0][1].crs)


#: Decimals of GeoJSON coordinates: 7 in degrees (~1 cm, RFC 7946's advice, as GDAL writes), 3 in metres.
_DECIMALS = {4326: 7, 4490: 7, 4545: 3}


def _geojson(frames: dict[str, Iterable[gpd.GeoDataFrame]], path: Path, crs: int) -> None:
    """One FeatureCollection written chunk by chunk: memory holds one chunk, not the layer.

    Several layers share it, each feature saying its ``layer``; a CRS other than lon/lat
    WGS 84 is named in a ``crs`` member (GDAL and QGIS read it).
    """
    several = len(frames) > 1
    head = {"type": "FeatureCollection"}
    if crs != 4326:
        head["crs"] = {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{crs}"}}
    decimals = _DECIMALS.get(crs, 7)
    with open(path, "w", encoding="utf-8") as out:
        out.write(json.dumps(head, ensure_ascii=False)[:-1] + ', "features": [\n')
        first = True
        for name, chunks in frames.items():
            for frame in chunks:
                table = frame.drop(columns=frame.geometry.name)
                if several:
                    table = table.assign(layer=name)
                props = json.loads(table.to_json(orient="records", date_format="iso", force_ascii=False,
                                                  double_precision=10))
                geoms = shapely.to_geojson(shapely.transform(
                    frame.geometry.values, lambda xy: np.round(xy, decimals)))
                for p, g in zip(props, geoms, strict=True):
                    out.write(("" if first else ",\n") + '{"type": "Feature", "properties": '
                              + json.dumps(p, ensure_ascii=False) + ', "geometry": ' + (g or "null") + "}")
                    first = False
        out.write("\n]}\n")


def _xlsx(frames: dict[str, Iterable[gpd.GeoDataFrame]], path: Path,
          headers: dict[str, dict[str, str]]) -> None:
    from openpyxl import Workbook

    wb = Workbook(write_only=True)  # streamed: 3× faster and a fraction of the memory
    for name, chunks in frames.items():
        ws = wb.create_sheet(name[:31])
        ws.freeze_panes = "A2"
        for i, frame in enumerate(chunks):
            cols = [c for c in frame.columns if c != "geometry"]
            if i == 0:
                ws.append([headers.get(name, {}).get(c, c) for c in cols])
            for row in frame[cols].itertuples(index=False):
                ws.append([None if pd.isna(v) else v for v in row])
    wb.save(path)


def write_frames(frames: Mapping[str, gpd.GeoDataFrame | Iterable[gpd.GeoDataFrame]], fmt: str, path: Path,
                 *, crs: int = 4326,
                 encoding: str = "utf-8", csv_geometry: str = "wkt",
                 headers: dict[str, dict[str, str]] | None = None) -> Path:
    """Write ``frames`` (layer name → lon/lat frame, or an iterable of chunks) to ``path``.

    ``shp`` is a zip of one shapefile per frame; ``csv`` and ``geojson`` hold every frame in
    one table with a ``layer`` column; ``gpkg`` and ``xlsx`` one layer or sheet per frame.
    XLSX carries no geometry (a cell holds at most 32 767 characters); ``headers`` gives
    its column titles. GeoPackage, shapefile and XLSX are written chunk by chunk; GeoJSON
    and CSV (which GDAL cannot append to) gather the chunks first. Returns the file.
    """
    _check(fmt, crs, encoding)
    frames = {n: _chunks(f, crs) for n, f in frames.items()}
    path = Path(path)
    if fmt == "geojson":
        _geojson(frames, path, crs)
    elif fmt == "gpkg":
        for name, chunks in frames.items():
            for i, frame in enumerate(chunks):
                pyogrio.write_dataframe(frame, path, layer=name, driver="GPKG", append=i > 0)
    elif fmt == "shp":
        folder = path.with_suffix("")
        folder.mkdir(parents=True, exist_ok=True)
        gdal_encoding = "UTF-8" if encoding == "utf-8" else "CP936"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, chunks in frames.items():
                shp = folder / f"{name}.shp"
                for i, frame in enumerate(chunks):
                    pyogrio.write_dataframe(frame, shp, driver="ESRI Shapefile", encoding=gdal_encoding,
                                            append=i > 0)
                shp.with_suffix(".cpg").write_text(ENCODINGS[encoding], "ascii")
                for part in sorted(folder.glob(f"{name}.*")):
                    zf.write(part, part.name)
    elif fmt == "csv":
        frame = _one(frames)
        if csv_geometry == "none":
            pyogrio.write_dataframe(pd.DataFrame(frame.drop(columns="geometry")), path, driver="CSV",
                                    layer_options={"WRITE_BOM": "YES"})
        else:
            pyogrio.write_dataframe(frame, path, driver="CSV",
                                    layer_options={"GEOMETRY": "AS_WKT", "WRITE_BOM": "YES"})
    else:
        _xlsx(frames, path, headers or {})
    return path
