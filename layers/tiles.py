"""Mapbox Vector Tiles of the layers, built whole inside PostGIS.

One statement per tile: the GiST index picks the features by the tile's envelope
(``ST_Intersects(geom, ST_Transform(ST_TileEnvelope(z, x, y), 4326))``; a Web Mercator
square is a lon/lat rectangle), ``ST_AsMVTGeom`` clips and quantises each to the tile
grid and ``ST_AsMVT`` encodes the layer. Python only passes the bytes on. Below
:data:`DETAIL_ZOOM`, features of a few pixels are merged into cells (server-side
generalisation), so that a tile of the whole township stays small; up to
:data:`layers.overviews.BASE_ZOOM` the cells are regrouped from ones the database keeps
(:mod:`layers.overviews`) instead of from every feature.

A tile carries what a map draws and a click shows: ``id`` (also the MVT feature id),
``code``, ``name``, ``village_code``, the headline size (``area_mu``, ``length_m``), and
every coded, numeric or date attribute (colours, legends, seasons, expiry); free text
stays in the Features API.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from layers.errors import BadRequestError, NotFoundError
from layers.model import Layer
from layers.registry import LAYERS

__all__ = [
    "BUFFER",
    "CELL_PX",
    "DETAIL_ZOOM",
    "EXTENT",
    "MAX_ZOOM",
    "MIN_ZOOM",
    "TILE_MATRIX_SET",
    "TILE_TIMEOUT_MS",
    "InvalidTileError",
    "TileAddress",
    "TileOutOfRangeError",
    "UnknownTileMatrixSetError",
    "multi_tile_sql",
    "parse_tile",
    "tile_columns",
    "tile_settings",
    "tile_sql",
]

#: The one tile matrix set served (OGC 17-083r4 WebMercatorQuad, EPSG:3857, 0 … 24).
TILE_MATRIX_SET = "WebMercatorQuad"
MIN_ZOOM, MAX_ZOOM = 0, 24
#: Tile grid (4096 units a side, the MVT default) and the margin kept around it, so
#: that outlines meet across tile edges.
EXTENT, BUFFER = 4096, 64
#: Below this zoom, features smaller than a cell of CELL_PX screen pixels are drawn as one
#: square per occupied cell (server-side generalisation): 40 000 parcels of 1-2 pixels
#: in one zoom-10 tile would be 4 MB and a second of work, the cells are ~170 kB.
DETAIL_ZOOM = 13
#: Side in screen pixels (of 256 a tile) of the cells that stand for small features.
CELL_PX = 4

#: Most time one tile may take in the database (a zoom-8 tile of a million parcels takes
#: 6 s, zoom 10 2 s); beyond, the request is a 503 ``query_timeout``, not a hung map.
TILE_TIMEOUT_MS = 20_000
#: Sent before a tile statement in its transaction. A tile is a few milliseconds of one
#: index scan; parallel workers only add their start-up, and a map asks for many tiles
#: at once (measured: 62 ms instead of 21 for a 750-parcel tile under load).
def tile_settings(timeout_ms: int = TILE_TIMEOUT_MS) -> tuple[str, ...]:
    """The ``SET LOCAL`` statements sent before a tile statement in its transaction."""
    return ("SET LOCAL max_parallel_workers_per_gather = 0",
            f"SET LOCAL statement_timeout = {int(timeout_ms)}")


class InvalidTileError(BadRequestError):
    """The tile address is not three integers of WebMercatorQuad."""

    code = "invalid_tile"
    title = "Invalid tile address"


class TileOutOfRangeError(NotFoundError):
    """The column or row lies outside the zoom level's matrix."""

    code = "tile_out_of_range"
    title = "Tile out of range"

    def __init__(self, z: int, x: int, y: int) -> None:
        n = 2 ** z - 1
        super().__init__(f"tile {z}/{x}/{y} does not exist: at zoom {z} column and row run 0 … {n}")
        self.z, self.x, self.y = z, x, y

    def extra(self) -> dict[str, object]:
        """The tile asked for."""
        return {"tile": {"z": self.z, "x": self.x, "y": self.y}}


class UnknownTileMatrixSetError(NotFoundError):
    """Only WebMercatorQuad is served."""

    code = "unknown_tile_matrix_set"
    title = "Unknown tile matrix set"

    def __init__(self, name: str) -> None:
        super().__init__(f"no tile matrix set {name!r}; served: {TILE_MATRIX_SET}")
        self.name = name

    def extra(self) -> dict[str, object]:
        """The name asked for and the ones served."""
        return {"tile_matrix_set": self.name, "served": [TILE_MATRIX_SET]}


@dataclass(frozen=True)
class TileAddress:
    """A checked WebMercatorQuad tile: zoom, column, row (XYZ, row 0 at the north)."""

    z: int
    x: int
    y: int

    def __str__(self) -> str:
        return f"{self.z}/{self.x}/{self.y}"


def parse_tile(tms: str, z: str | int, x: str | int, y: str | int) -> TileAddress:
    """A tile address from the path, or the problem with it.

    >>> parse_tile("WebMercatorQuad", "12", "3315", "1579")
    TileAddress(z=12, x=3315, y=1579)
    """
    if tms != TILE_MATRIX_SET:
        raise UnknownTileMatrixSetError(tms)
    try:
        zi, xi, yi = (int(str(v), 10) for v in (z, x, y))
    except ValueError:
        raise InvalidTileError(f"tile address {z}/{x}/{y} is not three integers z/x/y") from None
    if not MIN_ZOOM <= zi <= MAX_ZOOM:
        raise InvalidTileError(f"zoom {zi} is outside {MIN_ZOOM} … {MAX_ZOOM}")
    if not (0 <= xi < 2 ** zi and 0 <= yi < 2 ** zi):
        raise TileOutOfRangeError(zi, xi, yi)
    return TileAddress(zi, xi, yi)


def tile_columns(layer: Layer) -> dict[str, str]:
    """Property name → SQL expression on alias ``t`` for the attributes a tile carries."""
    cols = {"id": "t.id"}
    for f in layer.all_fields:
        if f.name in ("code", "name", "village_code") or f.choices or f.type != "text":
            cols[f.name] = f"t.{f.name}::text" if f.type in ("date", "monthday") else f"t.{f.name}"
    size = layer.size
    if size is not None:
        cols[size.name] = f"round(({size.sql})::numeric, 2)::float8"
    return cols


def _layer_select(layer: Layer, address: TileAddress, overviews: bool = True,
                  asof: datetime | None = None, materialize: bool = False) -> str:
    """``SELECT`` of one MVT layer (bytea, empty when nothing is in the tile).

    ``materialize``: the rows go through a materialized CTE, for a layer Citus distributes: it
    then encodes on the coordinator from typed rows (pushed down, ``ST_AsMVT`` of its record
    finds no geometry column). One server encodes straight from the subquery (10 % faster at z13).

    ``asof``: the layer as it was then (:func:`layers.history.asof_sql`), grouped afresh.
    """
    z, x, y = address.z, address.x, address.y
    cols = tile_columns(layer)
    source = layer.table
    if asof is not None:
        from layers.history import asof_sql

        source = asof_sql(layer, f"'{asof.isoformat()}'")  # a datetime's own text: no user string
        overviews = False
    env = f"ST_TileEnvelope({z}, {x}, {y})"
    box = f"ST_Transform(ST_TileEnvelope({z}, {x}, {y}, margin => {BUFFER / EXTENT}), 4326)"
    props = ", ".join(f"{expr} AS {name}" for name, expr in cols.items())
    # ST_Intersects, not a bare ``&&``: both use the GiST index, but with ``&&`` alone the
    # planner underrates the scan and picks a parallel sequential scan, 5x slower;
    # a feature id column of its own, so that ``id`` also stays among the properties
    parts = [f"SELECT t.id AS fid, ST_AsMVTGeom(ST_Transform(t.geom, 3857), {env}, {EXTENT}, {BUFFER}, true) "
             f"AS geom, {props}, NULL::int AS parcels FROM {source} t "
             f"WHERE ST_Intersects(t.geom, {box})"]
    where = f"t.geom && {box}"
    # small polygons merge into cells below the detail zoom; frames stay whole, lines stay lines
    if z < DETAIL_ZOOM and not layer.is_frame and layer.is_polygonal:
        parts[0] += f" AND {_SPAN} >= {_cell_degrees(z)!r}"
        from layers.overviews import BASE_ZOOM, overview_select  # (it builds on this module)

        if overviews and z <= BASE_ZOOM:  # regrouped from the cells the database keeps
            parts.append(overview_select(layer, z, x, y, env))
        else:
            parts.append(_cells_select(layer, z, where, env, source))
    rows = " UNION ALL ".join(parts)
    encode = f"SELECT ST_AsMVT(m, '{layer.id}', {EXTENT}, 'geom', 'fid')"
    return f"WITH m AS MATERIALIZED ({rows}) {encode} FROM m" if materialize else f"{encode} FROM ({rows}) m"


#: A feature's larger side in degrees (from its bounding box, no geometry work).
_SPAN = "greatest(ST_XMax(t.geom) - ST_XMin(t.geom), ST_YMax(t.geom) - ST_YMin(t.geom))"
_HALF_WORLD = 20037508.342789244  # metres, Web Mercator


def _cell_degrees(z: int) -> float:
    return 360.0 / 2 ** z / 256 * CELL_PX


def _cells_select(layer: Layer, z: int, where: str, env: str, source: str) -> str:
    """Features smaller than a cell, one square per occupied cell of the tile's grid.

    The square's side is that of the cells' summed area (full when the cell is covered),
    its attributes the commonest value of each coded field and the mean of each number;
    ``parcels`` says how many features it stands for.
    """
    c, o, n = 2 * _HALF_WORLD / 2 ** z / 256 * CELL_PX, _HALF_WORLD, 2 ** z * 256 // CELL_PX
    aggs = []
    for name in tile_columns(layer):
        f = layer.get_field(name) if name in {g.name for g in layer.all_fields} else None
        if f is not None and (f.choices or name == "village_code"):
            aggs.append(f"mode() WITHIN GROUP (ORDER BY t.{name}) AS {name}")
        elif f is not None and f.type == "integer":
            aggs.append(f"round(avg(t.{name}))::int AS {name}")
        elif f is not None and f.type == "real":
            aggs.append(f"round(avg(t.{name})::numeric, 3)::float8 AS {name}")
        else:
            aggs.append(f"NULL AS {name}")
    sizes = {m.name for m in layer.measures or ()}
    raw = ", ".join(sorted({f"t.{n}" for n in tile_columns(layer) if n not in sizes} | {"t.area_m2"}))
    # the cell of a feature's bounding-box centre, by the Web Mercator formulas (no PROJ
    # call); the box is taken once (OFFSET 0 keeps it from being inlined into each use)
    lon = "(ST_XMin(t.b) + ST_XMax(t.b)) / 2"
    lat = "radians((ST_YMin(t.b) + ST_YMax(t.b)) / 2)"
    span = "greatest(ST_XMax(t.b) - ST_XMin(t.b), ST_YMax(t.b) - ST_YMin(t.b))"
    # half the square's side: from the summed area, scaled by Web Mercator's 1/cos(latitude)
    half = f"least({c / 2!r}, sqrt(sum(t.area_m2)) / 2 / cos(avg(t.lat)))"
    cx, cy = f"(t.ix * {c!r} - {o!r} + {c / 2!r})", f"({o!r} - t.iy * {c!r} - {c / 2!r})"
    square = f"ST_MakeEnvelope({cx} - {half}, {cy} - {half}, {cx} + {half}, {cy} + {half}, 3857)"
    return (f"SELECT NULL AS fid, ST_AsMVTGeom({square}, {env}, {EXTENT}, {BUFFER}, true) AS geom, "
            f"{', '.join(aggs)}, count(*)::int AS parcels FROM ("
            f"SELECT {raw}, {lat} AS lat, floor(({lon} + 180) / 360 * {n}) AS ix, "
            f"floor((1 - asinh(tan({lat})) / pi()) / 2 * {n}) AS iy FROM ("
            f"SELECT {raw}, Box2D(t.geom) AS b FROM {source} t WHERE {where} OFFSET 0) t "
            f"WHERE {span} < {_cell_degrees(z)!r}) t GROUP BY t.ix, t.iy")


def tile_sql(layer: Layer, z: int, x: int, y: int, *, overviews: bool = True,
             asof: datetime | None = None, materialize: bool = False) -> str:
    """The statement building ``layer``'s tile ``z/x/y`` (one bytea row; may be empty).

    The address is checked and inlined as integer literals, so the statement stands
    alone (``pgbench`` runs it as it is) and the planner sees the envelope.
    """
    address = parse_tile(TILE_MATRIX_SET, z, x, y)
    return _layer_select(layer, address, overviews, asof, materialize)


def multi_tile_sql(layers: list[Layer] | None, z: int, x: int, y: int, *,
                   asof: datetime | None = None, materialize: bool = False) -> str:
    """One tile holding one MVT layer per collection (concatenated layer messages)."""
    address = parse_tile(TILE_MATRIX_SET, z, x, y)
    parts = [f"coalesce(({_layer_select(layer, address, asof=asof, materialize=materialize)}), ''::bytea)"
             for layer in (layers if layers is not None else list(LAYERS.values()))]
    return "SELECT " + " || ".join(parts)
