"""Printed maps for the township's reports: title, legend, scale bar, north arrow, CJK text.

The same :class:`gis.maps.MapLayer` s the web map shows (inline GeoJSON whose features
carry their Leaflet ``_style``) are drawn with matplotlib in a local UTM projection, so
the scale bar is true in metres. Chinese text needs a CJK font: Debian's
``fonts-noto-cjk`` (Noto Sans CJK SC); without one, matplotlib would print empty boxes.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from matplotlib import font_manager, rc_context
from matplotlib.collections import PathCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrow, Patch, Rectangle
from matplotlib.path import Path as MplPath

from gis.maps import LegendItem, MapLayer

__all__ = ["CJK_FAMILIES", "FontMissingError", "cjk_font", "print_map"]

#: Font families tried in order for Chinese text.
CJK_FAMILIES = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Zen Hei")
_DEBIAN_FONT = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")


class FontMissingError(RuntimeError):
    """No CJK font is installed: Chinese text would print as empty boxes."""


def cjk_font() -> str:
    """The family name of an installed CJK font (``apt-get install fonts-noto-cjk``)."""
    known = {f.fname for f in font_manager.fontManager.ttflist}
    if _DEBIAN_FONT.exists() and str(_DEBIAN_FONT) not in known:
        font_manager.fontManager.addfont(str(_DEBIAN_FONT))
    for family in CJK_FAMILIES:
        try:
            font_manager.findfont(font_manager.FontProperties(family=family), fallback_to_default=False)
        except ValueError:
            continue
        return family
    raise FontMissingError("no CJK font found: install fonts-noto-cjk")


def _dash(style: dict) -> object:
    dash = style.get("dashArray")
    if not dash:
        return "solid"
    return (0, tuple(float(x) for x in str(dash).replace(",", " ").split()))


def _frame(layer: MapLayer) -> gpd.GeoDataFrame:
    """The layer's features with their style columns.

    Geometries are GeoJSON, or WKB bytes (what :func:`layers.mapdata.map_layers` gives a
    printed map), decoded in one vectorised call.
    """
    features = list((layer.geojson or {}).get("features", []))
    if features and isinstance(features[0].get("geometry"), bytes | memoryview):
        geoms = shapely.from_wkb([bytes(f["geometry"]) for f in features])
        frame = gpd.GeoDataFrame(pd.DataFrame([f.get("properties") or {} for f in features]),
                                 geometry=gpd.GeoSeries(geoms, crs="EPSG:4326"))
    else:
        frame = gpd.GeoDataFrame.from_features(features, crs="EPSG:4326")
    if frame.empty:
        return frame
    styles = [f["properties"].get("_style", {}) for f in features]
    frame["_edge"] = [s.get("color", "#333333") for s in styles]
    frame["_fill"] = [s.get("fillColor", s.get("color", "#333333")) if s.get("fill", True) else "none"
                      for s in styles]
    frame["_alpha"] = [float(s.get("fillOpacity", 0.5)) if s.get("fill", True) else 0.0 for s in styles]
    frame["_width"] = [float(s.get("weight", 1.0)) * 0.6 for s in styles]
    frame["_dash"] = [_dash(s) for s in styles]
    return frame


def _nice_length(metres: float) -> float:
    """A round scale-bar length (1, 2 or 5 × 10ⁿ m) not longer than ``metres``."""
    exp = 10 ** math.floor(math.log10(metres))
    return max(m * exp for m in (1, 2, 5) if m * exp <= metres)


def _paths(geoms: gpd.GeoSeries) -> list[MplPath]:
    """One compound path per feature, holes included, built without a per-ring loop.

    Polygons become closed rings; lines (fences) open paths.
    """
    parts, part_of = shapely.get_parts(geoms.values, return_index=True)
    lines = len(parts) > 0 and bool((shapely.get_type_id(parts) == 1).all())
    if lines:
        rings, ring_of = parts, np.arange(len(parts))
    else:
        # holes wound against their exterior: matplotlib fills by the non-zero rule
        rings, ring_of = shapely.get_rings(shapely.orient_polygons(parts), return_index=True)
    coords, coord_of = shapely.get_coordinates(rings, return_index=True)
    codes = np.full(len(coords), MplPath.LINETO, dtype=MplPath.code_type)
    starts = np.flatnonzero(np.diff(coord_of, prepend=-1))
    codes[starts] = MplPath.MOVETO
    if not lines:
        codes[np.r_[starts[1:], len(coords)] - 1] = MplPath.CLOSEPOLY
    owner = part_of[ring_of[coord_of]]
    cuts = np.flatnonzero(np.diff(owner)) + 1
    return [MplPath(v, c) for v, c in zip(np.split(coords, cuts), np.split(codes, cuts), strict=True)]


def _draw_layer(ax, frame: gpd.GeoDataFrame) -> None:
    """All features of a layer as one collection.

    Each face has its own transparency, outlines stay opaque, each feature keeps its dash.
    """
    frame = frame[~frame.geometry.is_empty]
    faces = [to_rgba(f, a) if f != "none" else (0, 0, 0, 0)
             for f, a in zip(frame["_fill"], frame["_alpha"], strict=True)]
    ax.add_collection(PathCollection(_paths(frame.geometry), facecolors=faces,
                                     edgecolors=list(frame["_edge"]), linewidths=list(frame["_width"]),
                                     linestyles=list(frame["_dash"])))
    ax.autoscale_view()


def _handle(item: LegendItem) -> Patch | Line2D:
    dash = _dash({"dashArray": item.dash})
    if item.line:
        return Line2D([], [], color=item.stroke, linewidth=min(item.weight, 4) * 0.6, linestyle=dash)
    face = to_rgba(item.fill, item.fill_opacity) if item.fill else "none"  # as translucent as on the map
    return Patch(facecolor=face, edgecolor=item.stroke,
                 linewidth=min(item.weight, 3) * 0.6, linestyle=dash,
                 fill=bool(item.fill) and item.fill_opacity > 0)


def print_map(layers: Sequence[MapLayer], *, title: str, subtitle: str = "", lang: str = "zh",
              fmt: Literal["png", "pdf"] = "png", dpi: int = 150,
              size: tuple[float, float] = (11.69, 8.27),
              extent: tuple[float, float, float, float] | None = None,
              notes: Sequence[str] = ()) -> bytes:
    """A static map of ``layers`` (A4 landscape by default) as PNG or PDF bytes.

    Layers with vector tiles instead of GeoJSON are skipped: print from inline data.
    Labels come from each layer's ``label`` property (village names). ``extent``
    (west, south, east, north in degrees) is the part of the earth printed, e.g. what
    the screen showed; by default the features' extent. ``notes`` are printed under the
    legend (the township, the date of the data, the date of printing). The legend lists
    the layers that have features on the page.
    """
    family = cjk_font()
    frames = [(layer, _frame(layer)) for layer in layers if layer.geojson is not None and layer.show]
    drawn = [(layer, f) for layer, f in frames if not f.empty]
    if not drawn:
        raise ValueError("nothing to print: every layer is empty")
    crs = drawn[0][1].estimate_utm_crs()
    box = None
    if extent is not None:
        west, south, east, north = extent
        box = gpd.GeoSeries([shapely.box(west, south, east, north)], crs="EPSG:4326").to_crs(crs).total_bounds
    handles, labels, heads = [], [], set()
    for layer, _ in drawn:
        heads.add(len(labels))
        handles.append(Line2D([], [], linestyle="none"))
        labels.append(layer.title)
        for section in layer.legend:
            if section.title:
                handles.append(Line2D([], [], linestyle="none"))
                labels.append("  " + section.title)
            for item in section.items:
                handles.append(_handle(item))
                labels.append(item.label)
    # a long legend (the overview's) in two columns beside a narrower map, so that it stays on the page
    ncol = 1 if len(labels) <= 34 else 2
    font = 7.5 if ncol == 1 else 6.2
    right = 0.73 if ncol == 1 else 0.57
    fig = Figure(figsize=size, dpi=dpi)
    fig.set_facecolor("white")
    ax = fig.add_axes((0.03, 0.06, right - 0.03, 0.82))
    with rc_context({"font.family": family, "axes.unicode_minus": False}):
        for layer, frame in drawn:
            projected = frame.to_crs(crs)
            _draw_layer(ax, projected)
            if layer.label and layer.label in projected:
                for point, text in zip(projected.representative_point(), projected[layer.label], strict=True):
                    ax.annotate(str(text), (point.x, point.y), ha="center", va="center", fontsize=8,
                                fontfamily=family, color="#222222", annotation_clip=True)
        ax.set_aspect("equal", adjustable="datalim")
        if box is not None:
            ax.set_xlim(box[0], box[2])
            ax.set_ylim(box[1], box[3])
            ax.apply_aspect()
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("")
        ax.set_ylabel("")
        for spine in ax.spines.values():
            spine.set_color("#888888")
        x0, x1 = ax.get_xlim()
        y0, y1 = ax.get_ylim()
        _scale_bar(ax, x0, x1, y0, y1, family, lang)
        _north_arrow(ax, x1, y1, x1 - x0, y1 - y0, family, lang)
        fig.text(0.03, 0.955, title, fontsize=18, fontweight="bold", fontfamily=family, va="center")
        if subtitle:
            fig.text(0.03, 0.915, subtitle, fontsize=9, color="#555555", fontfamily=family, va="center")
        legend = fig.legend(handles, labels, loc="upper left", bbox_to_anchor=(right + 0.015, 0.88),
                            frameon=True, fontsize=font, ncol=ncol,
                            title="Legend" if lang == "en" else "图例",
                            prop={"family": family, "size": font}, handlelength=2.0, columnspacing=0.8)
        if notes:
            fig.text(0.985, 0.975, "\n".join(notes), fontsize=7.5, color="#333333", fontfamily=family,
                     va="top", ha="right", linespacing=1.5)
        legend.get_title().set_fontfamily(family)
        legend.get_title().set_fontweight("bold")
        for i, text in enumerate(legend.get_texts()):
            if i in heads:
                text.set_fontweight("bold")
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt, dpi=dpi, facecolor="white")
    return buffer.getvalue()


def _scale_bar(ax, x0: float, x1: float, y0: float, y1: float, family: str, lang: str) -> None:
    length = _nice_length((x1 - x0) / 4)
    x, y = x0 + (x1 - x0) * 0.04, y0 + (y1 - y0) * 0.04
    h = (y1 - y0) * 0.008
    for i in range(2):
        ax.add_patch(Rectangle((x + i * length / 2, y), length / 2, h, edgecolor="black",
                               facecolor="black" if i == 0 else "white", linewidth=0.6, zorder=10))
    text = f"{length / 1000:g} km" if length >= 1000 else f"{length:g} m"
    ax.text(x, y + h * 1.8, "0", fontsize=7, ha="center", fontfamily=family, zorder=10)
    ax.text(x + length, y + h * 1.8, text, fontsize=7, ha="center", fontfamily=family, zorder=10)


def _north_arrow(ax, x1: float, y1: float, w: float, h: float, family: str, lang: str) -> None:
    x, y = x1 - w * 0.05, y1 - h * 0.16
    ax.add_patch(FancyArrow(x, y, 0, h * 0.08, width=w * 0.008, head_width=w * 0.03, head_length=h * 0.035,
                            length_includes_head=True, color="black", zorder=10))
    ax.text(x, y + h * 0.095, "N" if lang == "en" else "北", ha="center", va="bottom", fontsize=11,
            fontweight="bold", fontfamily=family, zorder=10)
