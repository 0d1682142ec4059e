"""Generalised overviews: the cells low-zoom tiles are drawn from, kept exact by the database.

Below the detail zoom a tile draws features smaller than a cell of a few pixels as one square
per occupied cell (:mod:`layers.tiles`). Grouping a million parcels afresh for each such tile
takes seconds, so for zooms up to :data:`BASE_ZOOM` the groups come from ``layer_cells``:
one row per base cell and *aggregation zoom* (the lowest zoom at which a feature is still
small enough to be grouped: ``agg_from``) with the count, area, latitudes and the sums of
numbers, and ``layer_cell_codes`` with the count of each coded value. A tile at zoom ``z``
regroups the base cells of features with ``agg_from >= z`` (``ix >> (BASE_ZOOM - z)``):
counts, 亩 and averages are exactly those of grouping the features themselves, and the
commonest value is taken from the exact counts.

Triggers on each layer table (transition tables, one statement at a time) recompute the
cells a statement touched - every cell at once when it touched many - so an import, an
edit, an undo or an UPDATE in psql shows in the next tile.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

from layers.model import Layer
from layers.tiles import BUFFER, CELL_PX, EXTENT, tile_columns

__all__ = ["BASE_ZOOM", "cell_layers", "defer_cells", "function_sql", "has_cells", "install_sql",
           "overview_select", "refresh_cells", "refresh_sql", "uninstall_sql"]

#: Zoom whose cell grid the overviews keep; tiles at this zoom and below are drawn from them.
BASE_ZOOM = 10
#: Cells across the world at zoom ``z``: ``2**z * CELLS_PER_TILE``.
CELLS_PER_TILE = 256 // CELL_PX
#: Above this many changed cells a statement recomputes the layer's cells whole.
WHOLE_ABOVE = 5_000
_HALF_WORLD = 20037508.342789244
#: A feature's larger side in degrees, as :mod:`layers.tiles` measures it (and its index).
SPAN = "greatest(ST_XMax(geom) - ST_XMin(geom), ST_YMax(geom) - ST_YMin(geom))"


def has_cells(layer: Layer) -> bool:
    """Whether ``layer`` is drawn with cells at low zoom (polygons that are not the frame)."""
    return layer.is_polygonal and not layer.is_frame


def _fields(layer: Layer) -> tuple[list[str], list[tuple[str, str]]]:
    """Coded fields (counted per value) and number fields (summed), as tiles carry them."""
    coded, numbers = [], []
    names = {f.name for f in layer.all_fields}
    for name in tile_columns(layer):
        f = layer.get_field(name) if name in names else None
        if f is not None and (f.choices or name == "village_code"):
            coded.append(name)
        elif f is not None and f.type in ("integer", "real"):
            numbers.append((name, f.type))
    return coded, numbers


def _cell_rows(layer: Layer, source: str) -> str:
    """``ix``, ``iy`` (base grid), ``agg_from``, area, latitude and fields of ``source``'s rows.

    The cell is that of the bounding-box centre (Web Mercator formulas, as in the tiles);
    ``agg_from`` is the largest zoom ≤ BASE_ZOOM at which the feature's span is under a cell.
    """
    coded, numbers = _fields(layer)
    n = 2 ** BASE_ZOOM * CELLS_PER_TILE
    cols = ", ".join(dict.fromkeys([*coded, *(name for name, _ in numbers)]))
    cell_deg0 = 360.0 / 256 * CELL_PX
    return (f"SELECT floor(((ST_XMin(b) + ST_XMax(b)) / 2 + 180) / 360 * {n})::int AS ix, "
            f"floor((1 - asinh(tan(radians((ST_YMin(b) + ST_YMax(b)) / 2))) / pi()) / 2 * {n})::int AS iy, "
            f"CASE WHEN span = 0 THEN {BASE_ZOOM} ELSE least({BASE_ZOOM}, "
            f"ceil(ln({cell_deg0!r} / span) / ln(2))::int - 1) END AS agg_from, "
            f"area_m2, radians((ST_YMin(b) + ST_YMax(b)) / 2) AS lat{', ' + cols if cols else ''} "
            f"FROM (SELECT *, Box2D(geom) AS b, {SPAN} AS span FROM {source}) s "
            # "+ 0": every row is read, so not through the span index (a slower scan of it all)
            f"WHERE span + 0 < {cell_deg0!r}")


#: Per-field sums of two cells added (``{"field": [sum, count]}``): inserted rows join their cells.
ADD_SUMS_SQL = """
CREATE OR REPLACE FUNCTION landeco_add_sums(a jsonb, b jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_object_agg(k, jsonb_build_array(
               coalesce((a->k->>0)::float8, 0) + coalesce((b->k->>0)::float8, 0),
               coalesce((a->k->>1)::bigint, 0) + coalesce((b->k->>1)::bigint, 0))), '{}'::jsonb)
    FROM (SELECT jsonb_object_keys(a) UNION SELECT jsonb_object_keys(b)) s(k) $$"""


def _groups(layer: Layer, rows: str) -> str:
    """``rows`` (a ``_cell_rows`` select) grouped by cell, aggregation zoom and coded values, summed.

    One pass over the rows; cells and value counts are then summed from these few groups
    (tens of thousands for a million plots) instead of reading the rows twice.
    """
    coded, numbers = _fields(layer)
    keys = ", ".join(["ix", "iy", "agg_from", *coded])
    sums = "".join(f", sum({n})::float8 AS {n}_s, count({n}) AS {n}_n" for n, _ in numbers)
    return (f"SELECT {keys}, count(*) AS n, sum(area_m2) AS area_m2, sum(lat) AS lat{sums} "
            f"FROM ({rows}) r WHERE agg_from >= 0 GROUP BY {keys}")


def _from_groups(layer: Layer, groups: str, add: bool = False) -> tuple[str, str | None]:
    """The statements writing the cells and the value counts from ``groups`` (a :func:`_groups` table).

    ``add``: the groups are of new rows, and their counts and sums are added to the cells they join.
    """
    coded, numbers = _fields(layer)
    sums = ", ".join(f"'{n}', jsonb_build_array(sum({n}_s), sum({n}_n))" for n, _ in numbers)
    cells = (f"INSERT INTO layer_cells AS c (layer, ix, iy, agg_from, parcels, area_m2, lat_sum, numbers) "
             f"SELECT '{layer.id}', ix, iy, agg_from, sum(n), sum(area_m2), sum(lat), "
             f"jsonb_build_object({sums}) FROM {groups} GROUP BY ix, iy, agg_from")
    if add:
        cells += (" ON CONFLICT (layer, ix, iy, agg_from) DO UPDATE SET "
                  "parcels = c.parcels + excluded.parcels, area_m2 = c.area_m2 + excluded.area_m2, "
                  "lat_sum = c.lat_sum + excluded.lat_sum, "
                  "numbers = landeco_add_sums(c.numbers, excluded.numbers)")
    if not coded:
        return cells, None
    values = ", ".join(f"('{name}', g.{name}::text)" for name in coded)
    conflict = (" ON CONFLICT (layer, field, ix, iy, agg_from, value) DO UPDATE SET n = k.n + excluded.n"
                if add else "")
    codes = (f"INSERT INTO layer_cell_codes AS k (layer, ix, iy, agg_from, field, value, n) "
             f"SELECT '{layer.id}', ix, iy, agg_from, v.field, v.value, sum(n) "
             f"FROM {groups} g CROSS JOIN LATERAL (VALUES {values}) AS v(field, value) "
             f"WHERE v.value IS NOT NULL GROUP BY ix, iy, agg_from, v.field, v.value{conflict}")
    return cells, codes


def _fill(layer: Layer, rows: str, add: bool = False) -> list[str]:
    """The statement inserting the cells of ``rows`` (a ``_cell_rows`` select), read once.

    ``add``: the rows are new, and their counts and sums are added to the cells they join.
    """
    cells, codes = _from_groups(layer, "g", add)
    groups = f"WITH g AS MATERIALIZED ({_groups(layer, rows)})"
    if codes is None:
        return [f"{groups} {cells}"]
    return [f"{groups}, cells AS ({cells} RETURNING 1) {codes}"]


def refresh_sql(layer: Layer) -> list[str]:
    """Statements recomputing every cell of ``layer``.

    The groups go through a temporary table: unlike an INSERT, ``CREATE TABLE AS`` may read
    the layer with parallel workers (a million plots: 6.1 s → 3.2 s, 1 M rows on 2 cores).
    """
    cells, codes = _from_groups(layer, "landeco_cell_groups")
    return [f"DELETE FROM layer_cells WHERE layer = '{layer.id}'",
            f"DELETE FROM layer_cell_codes WHERE layer = '{layer.id}'",
            f"CREATE TEMP TABLE landeco_cell_groups ON COMMIT DROP AS "
            f"{_groups(layer, _cell_rows(layer, layer.table))}",
            cells, *([codes] if codes else []), "DROP TABLE landeco_cell_groups",
            # fresh statistics, or the planner takes the new cells for none and nests its loops
            "ANALYZE layer_cells", "ANALYZE layer_cell_codes"]


def function_sql(layer: Layer) -> str:
    """The trigger function keeping ``layer``'s cells (one per layer: its fields are its own)."""
    n = 2 ** BASE_ZOOM * CELLS_PER_TILE
    whole = "\n".join(f"        {s};" for s in refresh_sql(layer))
    # the rows of the touched cells, found through the spatial index by each cell's box
    box = (f"ST_Transform(ST_MakeEnvelope(a.ix * {2 * _HALF_WORLD / n!r} - {_HALF_WORLD!r}, "
           f"{_HALF_WORLD!r} - (a.iy + 1) * {2 * _HALF_WORLD / n!r}, "
           f"(a.ix + 1) * {2 * _HALF_WORLD / n!r} - {_HALF_WORLD!r}, "
           f"{_HALF_WORLD!r} - a.iy * {2 * _HALF_WORLD / n!r}, 3857), 4326)")
    touched = (f"(SELECT * FROM {layer.table} WHERE id IN (SELECT t.id FROM unnest(cells) AS c(k) "
               f"CROSS JOIN LATERAL (SELECT (c.k >> 32)::int AS ix, (c.k & 4294967295)::int AS iy) a "
               f"JOIN {layer.table} t ON t.geom && {box})) AS t")
    # joins with the touched keys, not "= ANY(cells)": a variable array is searched row by row
    rows = (f"SELECT x.* FROM ({_cell_rows(layer, touched)}) x "
            f"JOIN unnest(cells) AS k(key) ON ((x.ix::bigint << 32) | x.iy) = k.key")
    part = "\n".join(f"        {s};" for s in _fill(layer, rows))
    added = "\n".join(f"        {s};" for s in _fill(layer, _cell_rows(layer, "new_rows"), add=True))
    keys = "((ix::bigint << 32) | iy)"
    changed = {"INSERT": "new_rows", "DELETE": "old_rows"}
    return f"""
CREATE OR REPLACE FUNCTION landeco_cells_{layer.table}() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE cells bigint[];
BEGIN
    IF current_setting('landeco.defer_cells', true) = 'on' THEN
        RETURN NULL;  -- a bulk writer refreshes the layer's cells once, before it commits
    ELSIF TG_OP = 'TRUNCATE' THEN
        DELETE FROM layer_cells WHERE layer = '{layer.id}';
        DELETE FROM layer_cell_codes WHERE layer = '{layer.id}';
        RETURN NULL;
    ELSIF TG_OP = 'INSERT' THEN  -- new rows add to their cells: no cell is read again
{added}
        IF (SELECT count(*) FROM new_rows) > {WHOLE_ABOVE} THEN
            ANALYZE layer_cells;
            ANALYZE layer_cell_codes;
        END IF;
        RETURN NULL;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(DISTINCT {keys}) INTO cells FROM ({_cell_rows(layer, changed['DELETE'])}) r;
    ELSE
        SELECT array_agg(DISTINCT {keys}) INTO cells FROM (
            {_cell_rows(layer, 'old_rows')} UNION ALL {_cell_rows(layer, 'new_rows')}) r;
    END IF;
    IF cells IS NULL THEN
        RETURN NULL;
    ELSIF cardinality(cells) > {WHOLE_ABOVE} THEN
{whole}
        RETURN NULL;
    END IF;
    DELETE FROM layer_cells c USING unnest(cells) AS k(key)
        WHERE c.layer = '{layer.id}' AND ((c.ix::bigint << 32) | c.iy) = k.key;
    DELETE FROM layer_cell_codes c USING unnest(cells) AS k(key)
        WHERE c.layer = '{layer.id}' AND ((c.ix::bigint << 32) | c.iy) = k.key;
{part}
    RETURN NULL;
END $fn$"""


def defer_cells(conn: Connection) -> None:
    """Until :func:`refresh_cells`, the cells are not kept statement by statement in ``conn``'s transaction.

    For bulk writers (an import in batches): one refresh of a million plots costs less than
    keeping the cells at every batch.
    """
    conn.exec_driver_sql("SELECT set_config('landeco.defer_cells', 'on', true)")


def refresh_cells(conn: Connection, layer: Layer) -> None:
    """Recompute ``layer``'s cells in ``conn``'s transaction (they commit with the rows)."""
    conn.exec_driver_sql("SELECT set_config('landeco.defer_cells', 'off', true)")
    if has_cells(layer):
        for statement in refresh_sql(layer):
            conn.exec_driver_sql(statement)


def install_sql(layer: Layer) -> list[str]:
    """Statements giving ``layer`` its cells: the span index, the function, triggers, a fill."""
    t = layer.table
    return [f"CREATE INDEX IF NOT EXISTS ix_{t}_span ON {t} ({SPAN})",
            ADD_SUMS_SQL, function_sql(layer),
            f"CREATE TRIGGER cells_insert AFTER INSERT ON {t} REFERENCING NEW TABLE AS new_rows "
            f"FOR EACH STATEMENT EXECUTE FUNCTION landeco_cells_{t}()",
            f"CREATE TRIGGER cells_update AFTER UPDATE ON {t} REFERENCING OLD TABLE AS old_rows "
            f"NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION landeco_cells_{t}()",
            f"CREATE TRIGGER cells_delete AFTER DELETE ON {t} REFERENCING OLD TABLE AS old_rows "
            f"FOR EACH STATEMENT EXECUTE FUNCTION landeco_cells_{t}()",
            f"CREATE TRIGGER cells_truncate AFTER TRUNCATE ON {t} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION landeco_cells_{t}()",
            *refresh_sql(layer)]


def uninstall_sql(layer: Layer) -> list[str]:
    """The reverse of :func:`install_sql`."""
    t = layer.table
    return [*(f"DROP TRIGGER IF EXISTS cells_{e} ON {t}" for e in ("insert", "update", "delete", "truncate")),
            f"DROP FUNCTION IF EXISTS landeco_cells_{t}()", f"DROP INDEX IF EXISTS ix_{t}_span"]


def cell_layers(layers) -> list[Layer]:
    """The layers among ``layers`` that keep cells."""
    return [la for la in layers if has_cells(la)]


def overview_select(layer: Layer, z: int, x: int, y: int, env: str) -> str:
    """The cells of tile z/x/y (z ≤ BASE_ZOOM) regrouped from the base grid, as tile rows.

    Columns as :func:`layers.tiles._cells_select` gives them: ``fid`` (NULL), ``geom``, the
    tile's properties (commonest coded value, mean of numbers, NULL otherwise), ``parcels``.
    """
    k = BASE_ZOOM - z
    per = CELLS_PER_TILE
    margin = -(-per * BUFFER // EXTENT)  # the tile's buffer, in whole cells
    lo_x, hi_x = (x * per - margin) << k, (((x + 1) * per + margin) << k) - 1
    lo_y, hi_y = (y * per - margin) << k, (((y + 1) * per + margin) << k) - 1
    where = (f"layer = '{layer.id}' AND agg_from >= {z} AND ix BETWEEN {lo_x} AND {hi_x} "
             f"AND iy BETWEEN {lo_y} AND {hi_y}")
    coded, numbers = _fields(layer)
    sums = "".join(f", sum((numbers->'{n}'->>0)::float8) AS {n}_s, sum((numbers->'{n}'->>1)::int) AS {n}_n"
                   for n, _ in numbers)
    ctes = [f"g AS (SELECT ix >> {k} AS cx, iy >> {k} AS cy, sum(parcels)::int AS parcels, "
            f"sum(area_m2) AS area_m2, sum(lat_sum) / sum(parcels) AS lat{sums} "
            f"FROM layer_cells WHERE {where} GROUP BY 1, 2)"]
    join = ""
    if coded:  # the commonest value of each coded field, from the exact counts (ties: the least)
        ctes.append(f"m AS (SELECT cx, cy, jsonb_object_agg(field, value) AS m FROM ("
                    f"SELECT DISTINCT ON (cx, cy, field) cx, cy, field, value FROM ("
                    f"SELECT ix >> {k} AS cx, iy >> {k} AS cy, field, value, sum(n) AS n "
                    f"FROM layer_cell_codes WHERE {where} GROUP BY 1, 2, 3, 4) v "
                    f"ORDER BY cx, cy, field, n DESC, value) d GROUP BY 1, 2)")
        join = "LEFT JOIN m ON m.cx = g.cx AND m.cy = g.cy"
    props = []
    kinds = dict(numbers)
    for name in tile_columns(layer):
        if name in coded:
            props.append(f"m.m->>'{name}' AS {name}")
        elif kinds.get(name) == "integer":
            props.append(f"round((g.{name}_s / nullif(g.{name}_n, 0))::numeric)::int AS {name}")
        elif kinds.get(name) == "real":
            props.append(f"round((g.{name}_s / nullif(g.{name}_n, 0))::numeric, 3)::float8 AS {name}")
        else:
            props.append(f"NULL AS {name}")
    n = 2 ** z * per
    c, o = 2 * _HALF_WORLD / n, _HALF_WORLD
    half = f"least({c / 2!r}, sqrt(g.area_m2) / 2 / cos(g.lat))"
    cx, cy = f"(g.cx * {c!r} - {o!r} + {c / 2!r})", f"({o!r} - g.cy * {c!r} - {c / 2!r})"
    square = f"ST_MakeEnvelope({cx} - {half}, {cy} - {half}, {cx} + {half}, {cy} + {half}, 3857)"
    return (f"(WITH {', '.join(ctes)} SELECT NULL::bigint AS fid, ST_AsMVTGeom({square}, {env}, {EXTENT}, "
            f"{BUFFER}, true) AS geom, {', '.join(props)}, g.parcels FROM g {join})")
