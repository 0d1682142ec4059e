"""Vector tiles kept in the database under the versions of their layers.

Every write to a layer table bumps its row of ``layer_versions`` (a statement-level trigger,
migration 0008), whatever makes it: an import, an edit, an undo, psql. A tile is stored with
the versions it was built under and served only while they are current, so an edit shows
in the very next tile request, on every worker of every machine (the cache is a table of the
shared database; unlogged, so a crash merely empties it).

The versions are read *before* the tile is built: a write committed in between makes the
tile newer than its label, never older, and the next request rebuilds it.

Cached are the tiles worth it: below :data:`~layers.tiles.DETAIL_ZOOM` (where small
features are generalised into cells, the expensive tiles of a large layer) and any tile
that took :data:`SLOW_MS` or more to build (from its second request on: the quick tiles of
the detail zooms are not looked up in the cache at all, which would cost them a round trip).
Entries are keyed by layers and address, so a rebuilt tile replaces its stale entry;
:func:`prune` removes entries not rebuilt for a while.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import sqlalchemy as sa

from layers.model import Layer
from layers.tiles import DETAIL_ZOOM, TileAddress

__all__ = ["SLOW_MS", "cached_tile", "layer_versions", "prune"]

#: A tile that took this long to build is kept whatever its zoom.
SLOW_MS = 50.0
#: Tiles at or above the detail zoom this process found slow (kept in the cache): only those
#: are looked up there, so the many quick high-zoom tiles cost no extra round trip.
_SLOW: set[str] = set()
_SLOW_MAX = 100_000

_LOOKUP = sa.text(
    "SELECT v.v, c.data FROM (SELECT coalesce(string_agg(layer || ':' || version, ',' ORDER BY layer), '') "
    "AS v FROM layer_versions WHERE layer = ANY(:tables)) v "
    "LEFT JOIN tile_cache c ON c.key = :key AND c.version = v.v")
_STORE = sa.text(
    "INSERT INTO tile_cache (key, version, data, build_ms) VALUES (:key, :version, :data, :ms) "
    "ON CONFLICT (key) DO UPDATE SET version = excluded.version, data = excluded.data, "
    "build_ms = excluded.build_ms, created_at = now()")


def _key(layers: Sequence[Layer], address: TileAddress) -> str:
    return f"{','.join(la.id for la in layers)}/{address}"


def cached_tile(engine: sa.Engine, layers: Sequence[Layer], address: TileAddress,
                build: Callable[[], bytes]) -> tuple[bytes, bool]:
    """The tile of ``layers`` at ``address``: from the cache when current, else ``build()``.

    Returns the bytes and whether they came from the cache.
    """
    key = _key(layers, address)
    tables = {"tables": [la.table for la in layers], "key": key}
    look = address.z < DETAIL_ZOOM or key in _SLOW
    version = None
    if look:
        with engine.connect() as conn:
            version, data = conn.execute(_LOOKUP, tables).one()
        if data is not None:
            return bytes(data), True
    start = time.perf_counter()
    data = build()
    ms = (time.perf_counter() - start) * 1000
    if look and (address.z < DETAIL_ZOOM or ms >= SLOW_MS):
        # stored under the versions read before the build: a write meanwhile makes it stale, never wrong
        with engine.begin() as conn:
            conn.execute(_STORE, {"key": key, "version": version, "data": data, "ms": ms})
    elif not look and ms >= SLOW_MS:  # looked up (and kept) from its next request on
        if len(_SLOW) >= _SLOW_MAX:
            _SLOW.clear()
        _SLOW.add(key)
    return data, False


def layer_versions(conn: sa.Connection, layers: Sequence[Layer]) -> dict[str, int]:
    """How many times each of ``layers`` was written (0 for a layer never written)."""
    rows = dict(conn.execute(sa.text("SELECT layer, version FROM layer_versions WHERE layer = ANY(:t)"),
                             {"t": [la.table for la in layers]}).all())
    return {la.id: int(rows.get(la.table, 0)) for la in layers}


def prune(conn: sa.Connection, *, older_than_days: float = 7) -> int:
    """Remove entries not rebuilt for ``older_than_days`` days (stale or unasked); how many."""
    sql = "DELETE FROM tile_cache WHERE created_at < now() - make_interval(secs => :s)"
    return conn.execute(sa.text(sql), {"s": older_than_days * 86400}).rowcount
