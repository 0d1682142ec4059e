"""Interactive maps with Folium: styled GeoJSON or vector-tile layers, legend, basemaps.

The page loads every script and stylesheet from landeco's own origin (``vendor_url``,
filled by ``scripts/install-assets.sh``), never from a CDN: on the township's network a
CDN is unreachable and a map would be a blank page. Only basemap tiles come from outside,
and a map without them still shows every layer.

This module knows nothing of the database or the web: it takes GeoJSON feature
collections whose features already carry their Leaflet style (``properties["_style"]``)
and their display values, and returns a :class:`folium.Map` or its page parts.

Examples
--------
>>> fc = {"type": "FeatureCollection", "features": [{"type": "Feature", "id": 1,
...       "geometry": {"type": "Polygon", "coordinates": [[[107, 38], [107.1, 38], [107.1, 38.1],
...       [107, 38]]]}, "properties": {"code": "A1", "_style": {"color": "#333"}}}]}
>>> layer = MapLayer(key="plots", title="地块", geojson=fc, popup=(("code", "编号"),))
>>> m = build_map([layer], title="示例", bounds=((38, 107), (38.1, 107.1)), basemaps=[NO_BASEMAP])
>>> parts = page_parts(m)
>>> "cdn" in parts.header
False
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import folium
from branca.element import Figure, MacroElement
from folium.elements import JSCSSMixin
from folium.map import Layer
from folium.template import Template
from folium.utilities import JsCode

__all__ = [
    "NO_BASEMAP",
    "Basemap",
    "LegendItem",
    "LegendSection",
    "MapLayer",
    "PageParts",
    "RasterDate",
    "RasterOverlay",
    "TileStyle",
    "build_map",
    "osm_basemap",
    "page_parts",
    "tianditu_basemaps",
    "vendor_assets",
]


def vendor_assets(vendor_url: str = "/static/vendor") -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Folium's scripts and stylesheets, served from ``vendor_url`` instead of CDNs.

    The same names as Folium's ``default_js``/``default_css``, so plugins that look
    for them find them. Glyphicons and the rotated awesome-marker stylesheet are left
    out: they only serve marker icons, which landeco's maps do not draw.
    """
    v = vendor_url.rstrip("/")
    js = [
        ("leaflet", f"{v}/leaflet/leaflet.js"),
        ("jquery", f"{v}/jquery/jquery.min.js"),
        ("bootstrap", f"{v}/bootstrap/bootstrap.bundle.min.js"),
        ("awesome_markers", f"{v}/awesome-markers/leaflet.awesome-markers.min.js"),
    ]
    css = [
        ("leaflet_css", f"{v}/leaflet/leaflet.css"),
        ("bootstrap_css", f"{v}/bootstrap/bootstrap.min.css"),
        ("awesome_markers_font_css", f"{v}/fontawesome/css/all.min.css"),
        ("awesome_markers_css", f"{v}/awesome-markers/leaflet.awesome-markers.css"),
    ]
    return js, css


@dataclass(frozen=True)
class Basemap:
    """A background: tile URL templates drawn together (imagery + labels), or none."""

    key: str
    title: str
    tiles: tuple[str, ...] = ()
    attribution: str = ""
    subdomains: str = "abc"
    max_zoom: int = 18


#: The empty background: the village frames carry the orientation.
NO_BASEMAP = Basemap("none", "无底图")


def osm_basemap(title: str = "OpenStreetMap") -> Basemap:
    """OpenStreetMap's standard tiles."""
    return Basemap("osm", title, ("https://tile.openstreetmap.org/{z}/{x}/{y}.png",),
                   attribution='&copy; <a href="https://www.openstreetmap.org/copyright">'
                   "OpenStreetMap</a>", max_zoom=19)


def _tianditu(layer: str, key: str) -> str:
    return (f"https://t{{s}}.tianditu.gov.cn/{layer}_w/wmts?SERVICE=WMTS&REQUEST=GetTile"
            f"&VERSION=1.0.0&LAYER={layer}&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles"
            f"&TILEMATRIX={{z}}&TILEROW={{y}}&TILECOL={{x}}&tk={key}")


def tianditu_basemaps(key: str, vector_title: str = "天地图矢量",
                      imagery_title: str = "天地图影像") -> list[Basemap]:
    """Tianditu (天地图) vector and imagery, each with its Chinese annotation layer.

    Tianditu's Web Mercator tiles are in CGCS2000, which agrees with WGS 84 to well
    under a metre: no offset as with GCJ-02 maps.
    """
    attribution = '&copy; <a href="https://www.tianditu.gov.cn/">天地图</a>'
    return [
        Basemap("tianditu_vec", vector_title, (_tianditu("vec", key), _tianditu("cva", key)),
                attribution, subdomains="01234567"),
        Basemap("tianditu_img", imagery_title, (_tianditu("img", key), _tianditu("cia", key)),
                attribution, subdomains="01234567"),
    ]


@dataclass(frozen=True)
class LegendItem:
    """One swatch of a legend: how a class of features is drawn, and its label."""

    label: str
    stroke: str
    fill: str | None = None
    fill_opacity: float = 0.6
    weight: float = 1.0
    dash: str | None = None
    #: a line feature (a fence): the swatch is a stroke, not a box
    line: bool = False


@dataclass(frozen=True)
class LegendSection:
    """A titled group of swatches (e.g. 沉陷程度 with its three classes)."""

    title: str
    items: tuple[LegendItem, ...]


@dataclass(frozen=True)
class TileStyle:
    """How vector-tile features are coloured in the browser, from one property.

    Categories map a value to a colour; otherwise ``breaks`` (ascending, one more
    than ``colors``) split numbers into classes.
    """

    field: str
    categories: Mapping[str, str] = field(default_factory=dict)
    breaks: tuple[float, ...] = ()
    colors: tuple[str, ...] = ()
    default: str = "#999999"
    stroke: str = "#555555"
    weight: float = 0.5
    fill_opacity: float = 0.7
    #: lines are stroked in the class colour, never filled
    line: bool = False


@dataclass(frozen=True)
class MapLayer:
    """One overlay: inline GeoJSON (styled per feature) or vector tiles.

    ``popup`` lists (property, label) rows shown on click; ``link`` is the URL template
    (``{id}``, ``{code}``) of a page about the feature, linked from its popup. For tiles, ``tile_labels``
    maps a property to its label, unit and value labels, since tile properties are raw;
    ``tile_filter`` (property, value) draws only the tile features that match;
    ``tile_valid`` (from property, to property, ISO date) only those valid on that date.
    """

    key: str
    title: str
    geojson: Mapping[str, Any] | None = None
    popup: tuple[tuple[str, str], ...] = ()
    tiles_url: str | None = None
    tile_style: TileStyle | None = None
    tile_labels: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    legend: tuple[LegendSection, ...] = ()
    label: str | None = None
    show: bool = True
    interactive: bool = True
    link: str | None = None
    tile_filter: tuple[str, str] | None = None
    tile_valid: tuple[str, str, str] | None = None


@dataclass(frozen=True)
class RasterDate:
    """One raster of an overlay: its acquisition date, tile URL template, box and legend.

    ``tiles_url`` has ``{z}``, ``{x}``, ``{y}``; ``bounds`` is ((S, W), (N, E)), so that the
    map asks for no tile outside it; ``legend`` is :func:`gis.raster_tiles.legend`'s answer.
    """

    id: int
    acquired: str
    tiles_url: str
    bounds: tuple[tuple[float, float], tuple[float, float]]
    legend: Mapping[str, Any]
    label: str = ""


@dataclass(frozen=True)
class RasterOverlay:
    """Rasters of one kind drawn as one PNG tile overlay; the date slider switches among ``dates``.

    ``dates`` ascend; ``current`` is the index shown first. The page's script
    (``api/static/landeco-map.js``) finds overlays in ``window.landecoRasters`` and adds the
    opacity and date controls.
    """

    key: str
    title: str
    dates: tuple[RasterDate, ...]
    current: int = -1
    show: bool = False
    opacity: float = 0.75
    min_zoom: int = 5
    max_native_zoom: int = 22


def _raster_name(overlay: RasterOverlay, current: RasterDate) -> str:
    """The overlay's label in the layer control (HTML, as Leaflet inserts it): title and date."""
    return (f'{html.escape(overlay.title)} · <span class="landeco-raster-date" '
            f'data-raster="{html.escape(overlay.key)}">{html.escape(current.acquired)}</span>')


class _RasterTiles(Layer):
    """A Leaflet tile layer of a raster overlay's PNG tiles, registered for the page's controls."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = (function () {
            var cfg = {{ this.cfg|tojson }};
            var now = cfg.dates[cfg.current];
            var layer = L.tileLayer(now.tiles_url, {
                opacity: cfg.opacity, minZoom: cfg.min_zoom, maxNativeZoom: cfg.max_native_zoom,
                maxZoom: 24, tileSize: 256, bounds: now.bounds, className: "landeco-raster-tiles",
                crossOrigin: false
            });
            layer.on("load", function () {
                document.documentElement.dataset.rasterTilesLoaded = String(performance.now());
            });
            window.landecoRasters = window.landecoRasters || [];
            window.landecoRasters.push({layer: layer, name: {{ this.get_name()|tojson }}, config: cfg});
            return layer;
        })();
        {% endmacro %}
    """)

    def __init__(self, overlay: RasterOverlay) -> None:
        current = overlay.current % len(overlay.dates)
        super().__init__(name=_raster_name(overlay, overlay.dates[current]), overlay=True, control=True,
                         show=overlay.show)
        self._name = "RasterTiles"
        self.cfg = {"key": overlay.key, "title": overlay.title, "current": current,
                    "opacity": overlay.opacity, "min_zoom": overlay.min_zoom,
                    "max_native_zoom": overlay.max_native_zoom,
                    "dates": [{"id": d.id, "acquired": d.acquired, "label": d.label or d.acquired,
                               "tiles_url": d.tiles_url, "bounds": [list(d.bounds[0]), list(d.bounds[1])],
                               "legend": dict(d.legend)} for d in overlay.dates]}


def _raster_legend_html(js_name: str, overlay: RasterOverlay) -> str:
    """A raster overlay's legend entry: title, date, the colour ramp as a bar, labels under it."""
    d = overlay.dates[overlay.current % len(overlay.dates)]
    lg = d.legend
    hidden = "" if overlay.show else ' style="display:none"'
    span = float(lg["max"]) - float(lg["min"]) or 1.0
    ticks = "".join(
        f'<span style="left:{100 * (float(la["value"]) - float(lg["min"])) / span:.1f}%">'
        f'{html.escape(str(la.get("tick", la["text"])))}</span>' for la in lg["labels"])
    words = [str(la["text"]) for la in lg["labels"] if la["text"] != la.get("tick", la["text"])]
    sep = "；" if any(ord(c) > 127 for w in words for c in w) else "; "
    meaning = sep.join(html.escape(w) for w in words)
    unit = f' ({html.escape(str(lg["unit"]))})' if lg.get("unit") else ""
    return (f'<div class="landeco-legend-layer landeco-legend-raster" data-layer="{js_name}" '
            f'data-raster="{html.escape(overlay.key)}"{hidden}>'
            f'<div class="landeco-legend-name">{html.escape(str(lg["title"]))}{unit} · '
            f'<span class="landeco-raster-date">{html.escape(d.acquired)}</span></div>'
            f'<div class="landeco-ramp" style="background:{html.escape(str(lg["gradient"]))}"></div>'
            f'<div class="landeco-ramp-labels">{ticks}</div>'
            f'<div class="landeco-ramp-meaning">{meaning}</div>'
            f'<div class="landeco-legend-section">{html.escape(str(lg.get("transparent", "")))}</div></div>')


class _Basemap(Layer):
    """A base layer: a group of tile layers (none for the empty background)."""

    # Offline is the normal case: a tile that fails is counted and announced
    # (``landeco:basemap-error``), and the page falls back to the empty background.
    _template = Template("""
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = L.layerGroup([
        {%- for url in this.tiles %}
            L.tileLayer({{ url|tojson }}, {{ this.options|tojson }}).on("tileerror", function () {
                window.landecoBasemapErrors = (window.landecoBasemapErrors || 0) + 1;
                document.dispatchEvent(new CustomEvent("landeco:basemap-error",
                    {detail: {{ this.basemap_key|tojson }}}));
            }),
        {%- endfor %}
        ]);
        window.landecoBasemaps = window.landecoBasemaps || {};
        window.landecoBasemaps[{{ this.basemap_key|tojson }}] = {{ this.get_name() }};
        {% endmacro %}
    """)

    def __init__(self, basemap: Basemap, show: bool) -> None:
        super().__init__(name=basemap.title, overlay=False, control=True, show=show)
        self._name = "Basemap"
        self.basemap_key = basemap.key
        self.tiles = basemap.tiles
        self.options = {"attribution": basemap.attribution, "subdomains": basemap.subdomains,
                        "maxZoom": basemap.max_zoom}


class _VectorTiles(JSCSSMixin, Layer):
    """A Leaflet.VectorGrid layer drawing a landeco MVT collection on canvas."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = (function () {
            // VectorGrid 1.3's canvas click calls L.DomEvent.fakeStop, gone since Leaflet 1.8
            // (Leaflet.VectorGrid#274): mark the event stopped the way Leaflet 1.9 reads it
            if (!L.DomEvent.fakeStop) {
                L.DomEvent.fakeStop = function (e) { e._stopped = true; };
            }
            var style = {{ this.style|tojson }};
            var labels = {{ this.labels|tojson }};
            function fillOf(p) {
                var v = p[style.field];
                if (v === undefined || v === null) { return style.default; }
                if (Object.keys(style.categories).length) {
                    return style.categories[String(v)] || style.default;
                }
                for (var i = 0; i < style.colors.length; i++) {
                    if (v < style.breaks[i + 1]) { return style.colors[i]; }
                }
                return style.colors.length ? style.colors[style.colors.length - 1] : style.default;
            }
            var styles = {};
            var only = {{ this.filter|tojson }};
            var valid = {{ this.valid|tojson }};
            styles[{{ this.tile_layer|tojson }}] = function (p, zoom) {
                if (only && String(p[only[0]]) !== only[1]) { return []; }  // not drawn
                // a delineation not in force on the map date (ISO dates compare as text)
                if (valid && ((p[valid[0]] && p[valid[0]] > valid[2]) ||
                              (p[valid[1]] && p[valid[1]] < valid[2]))) { return []; }
                if (style.line) {
                    return {fill: false, stroke: true, color: fillOf(p), weight: style.weight};
                }
                // outlines only once parcels are big enough to see them apart
                return {fill: true, fillColor: fillOf(p), fillOpacity: style.fill_opacity,
                        stroke: zoom >= 13, color: style.stroke, weight: style.weight};
            };
            var layer = L.vectorGrid.protobuf({{ this.url|tojson }}, {
                rendererFactory: L.canvas.tile, interactive: true, maxNativeZoom: 22,
                vectorTileLayerStyles: styles,
                getFeatureId: function (f) { return f.properties.id; }
            });
            // a hook for tests and benchmarks: when every visible tile is drawn
            layer.on("load", function () {
                document.documentElement.dataset.tilesLoaded = String(performance.now());
            });
            layer.on("click", function (e) {
                var p = e.layer.properties || {};
                function esc(t) {
                    return String(t).replace(/[&<>"]/g,
                        function (c) { return "&#" + c.charCodeAt(0) + ";"; });
                }
                var rows = "";
                labels.forEach(function (pair) {
                    var k = pair[0], d = pair[1], v = p[k];
                    if (v === undefined || v === null) { return; }
                    if (d.values && d.values[String(v)]) { v = d.values[String(v)]; }
                    else if (typeof v === "number" && d.scale) { v = (v * d.scale).toFixed(d.digits); }
                    else if (typeof v === "number" && d.digits !== undefined) { v = v.toFixed(d.digits); }
                    var text = String(v) + (d.unit ? " " + d.unit : "");
                    rows += "<tr><th>" + esc(d.label) + "</th><td>" + esc(text) + "</td></tr>";
                });
                {%- if this.link %}
                if (p.id !== undefined) {  // a generalised cell has no feature of its own
                var link = {{ this.link|tojson }}.replace("{id}", encodeURIComponent(p.id));
                rows += '<tr><td colspan="2"><a href="' + esc(link) + '">' + esc({{ this.link_text|tojson }})
                    + "</a></td></tr>";
                }
                {%- endif %}
                var at = e.latlng || {{ this._parent.get_name() }}.mouseEventToLatLng(e.originalEvent);
                L.popup().setLatLng(at)
                    .setContent('<table class="landeco-popup">' + rows + "</table>")
                    .openOn({{ this._parent.get_name() }});
            });
            return layer;
        })();
        {% endmacro %}
    """)

    def __init__(self, layer: MapLayer, vendor_url: str, link_text: str) -> None:
        super().__init__(name=layer.title, overlay=True, control=True, show=layer.show)
        self._name = "VectorTiles"
        self.default_js = [("vectorGrid", f"{vendor_url}/vectorgrid/Leaflet.VectorGrid.bundled.min.js")]
        self.default_css = []
        self.url = layer.tiles_url
        self.tile_layer = layer.key
        style = layer.tile_style or TileStyle(field="id")
        self.style = {"field": style.field, "categories": dict(style.categories),
                      "breaks": list(style.breaks), "colors": list(style.colors),
                      "default": style.default, "stroke": style.stroke, "weight": style.weight,
                      "fill_opacity": style.fill_opacity, "line": style.line}
        # a list of pairs: tojson sorts object keys, the popup keeps the declaration's order
        self.labels = [[k, dict(v)] for k, v in layer.tile_labels.items()]
        self.link = layer.link
        self.filter = list(layer.tile_filter) if layer.tile_filter else None
        self.valid = list(layer.tile_valid) if layer.tile_valid else None
        self.link_text = link_text


def _swatch(item: LegendItem) -> str:
    if item.line:
        dash = f' stroke-dasharray="{html.escape(item.dash)}"' if item.dash else ""
        return (f'<svg width="22" height="14" aria-hidden="true"><line x1="1" y1="7" x2="21" y2="7" '
                f'stroke="{html.escape(item.stroke)}" stroke-width="{min(item.weight, 4)}"{dash}/></svg>')
    fill = html.escape(item.fill) if item.fill else "none"
    dash = f' stroke-dasharray="{html.escape(item.dash)}"' if item.dash else ""
    return (f'<svg width="22" height="14" aria-hidden="true"><rect x="1" y="1" width="20" height="12" '
            f'fill="{fill}" fill-opacity="{item.fill_opacity if item.fill else 0}" '
            f'stroke="{html.escape(item.stroke)}" stroke-width="{min(item.weight, 3)}"{dash}/></svg>')


def _legend_html(layers: Sequence[tuple[str, MapLayer]], title: str,
                 rasters: Sequence[tuple[str, RasterOverlay]] = ()) -> str:
    parts = [f'<div class="landeco-legend-title">{html.escape(title)}</div>']
    parts.extend(_raster_legend_html(js_name, overlay) for js_name, overlay in rasters)
    for js_name, layer in layers:
        hidden = "" if layer.show else ' style="display:none"'
        parts.append(f'<div class="landeco-legend-layer" data-layer="{js_name}" '
                     f'data-key="{html.escape(layer.key)}"{hidden}>'
                     f'<div class="landeco-legend-name">{html.escape(layer.title)}</div>')
        for section in layer.legend:
            if section.title:
                parts.append(f'<div class="landeco-legend-section">{html.escape(section.title)}</div>')
            parts.extend(f'<div class="landeco-legend-item">{_swatch(i)}'
                         f'<span>{html.escape(i.label)}</span></div>' for i in section.items)
        parts.append("</div>")
    return "".join(parts)


class _Controls(MacroElement):
    """Title, legend (following the layer control) and a metric scale bar."""

    _template = Template("""
        {% macro header(this, kwargs) %}
        <style>
        .landeco-map-title { background: rgba(255,255,255,.9); padding: 4px 10px; font-size: 16px;
            font-weight: 600; border-radius: 4px; box-shadow: 0 1px 4px rgba(0,0,0,.3); }
        .landeco-legend { background: rgba(255,255,255,.92); padding: 6px 10px; font-size: 12px;
            line-height: 1.4; border-radius: 4px; box-shadow: 0 1px 4px rgba(0,0,0,.3);
            max-height: 55vh; overflow-y: auto; }
        .landeco-legend-title { font-weight: 700; margin-bottom: 2px; }
        .landeco-legend-name { font-weight: 600; margin-top: 4px; }
        .landeco-legend-section { color: #555; margin-top: 2px; }
        .landeco-legend-item svg { vertical-align: middle; margin-right: 4px; }
        .landeco-village-label { background: transparent; border: none; box-shadow: none;
            font-weight: 600; color: #333; text-shadow: 0 0 3px #fff, 0 0 3px #fff; }
        .landeco-ramp { height: 12px; border: 1px solid #888; margin: 3px 0 0; min-width: 160px; }
        .landeco-ramp-labels { position: relative; height: 1.4em; font-size: 11px; }
        .landeco-ramp-meaning { font-size: 11px; color: #333; }
        .landeco-ramp-meaning:empty { display: none; }
        .landeco-ramp-labels span { position: absolute; transform: translateX(-50%); white-space: nowrap; }
        .landeco-ramp-labels span:first-child { transform: none; }
        .landeco-ramp-labels span:last-child { transform: translateX(-100%); }
        .landeco-popup th { padding-right: 8px; font-weight: 600; white-space: nowrap; vertical-align: top; }
        </style>
        {% endmacro %}
        {% macro script(this, kwargs) %}
        (function (map) {
            var title = L.control({position: "topleft"});
            title.onAdd = function () {
                var div = L.DomUtil.create("div", "landeco-map-title");
                div.textContent = {{ this.title|tojson }};
                return div;
            };
            title.addTo(map);
            // the scale first: Leaflet stacks bottom controls upwards, the legend above it
            L.control.scale({imperial: false, position: "bottomleft"}).addTo(map);
            // a page with a legend panel beside the map (api/templates/maps/map.html) gets the
            // legend there, where it covers no feature; elsewhere it floats on the map
            var slot = document.getElementById("landeco-legend-slot");
            if (slot) {
                var panel = document.createElement("div");
                panel.className = "landeco-legend";
                panel.innerHTML = {{ this.legend|tojson }};
                slot.appendChild(panel);
            } else {
                var legend = L.control({position: "bottomleft"});
                legend.onAdd = function () {
                    var div = L.DomUtil.create("div", "landeco-legend");
                    div.innerHTML = {{ this.legend|tojson }};
                    L.DomEvent.disableScrollPropagation(div);
                    return div;
                };
                legend.addTo(map);
            }
            var names = {{ this.names|tojson }};
            function toggle(e, shown) {
                for (var name in names) {
                    if (window[name] === e.layer) {
                        var el = document.querySelector('.landeco-legend-layer[data-layer="' + name + '"]');
                        if (el) { el.style.display = shown ? "" : "none"; }
                    }
                }
            }
            map.on("overlayadd", function (e) { toggle(e, true); });
            map.on("overlayremove", function (e) { toggle(e, false); });
        })({{ this._parent.get_name() }});
        {% endmacro %}
    """)

    def __init__(self, title: str, legend: str, names: Sequence[str]) -> None:
        super().__init__()
        self._name = "LandecoControls"
        self.title = title
        self.legend = legend
        self.names = {n: True for n in names}


def _geojson_layer(layer: MapLayer, link_text: str) -> folium.GeoJson:
    """An inline GeoJSON overlay, each feature drawn with its own ``_style``.

    Folium's popups and Leaflet's tooltips insert text as HTML: every value is escaped
    here, since attributes come from surveyors' files. Styles move out of the features
    into Folium's style table, so the page carries each style once.
    """
    source = (layer.geojson or {}).get("features", [])
    rows = [p for p, _ in layer.popup]
    styles: dict[Any, dict[str, Any]] = {}
    features = []
    for f in source:
        raw = f.get("properties") or {}
        props = dict(raw)
        styles[f.get("id")] = props.pop("_style", {})
        props = {k: html.escape(str(v)) if k in rows or k == layer.label else v
                 for k, v in props.items() if k in rows or k == layer.label}
        if layer.link and f.get("id") is not None:
            url = html.escape(layer.link.replace("{id}", quote(str(f["id"])))
                              .replace("{code}", quote(str(raw.get("code", "")))))
            props["_link"] = f'<a href="{url}">{html.escape(link_text)}</a>'
        features.append({**f, "properties": props})
    popup = None
    if layer.popup and layer.interactive and features:
        fields = [*rows, *(["_link"] if layer.link else [])]
        aliases = [label for _, label in layer.popup] + ([""] if layer.link else [])
        popup = folium.GeoJsonPopup(fields=fields, aliases=aliases, class_name="landeco-popup", max_width=360)
    label = None
    if layer.label:
        # one permanent label per feature, at its centre (a GeoJson tooltip would be one per layer);
        # the text is already escaped
        label = JsCode(f"""function (feature, layer) {{
            layer.bindTooltip(String(feature.properties[{json.dumps(layer.label)}]),
                {{permanent: true, direction: "center", className: "landeco-village-label"}});
        }}""")
    return folium.GeoJson(
        {"type": "FeatureCollection", "features": features},
        name=layer.title,
        style_function=lambda f: styles.get(f.get("id"), {}),
        highlight_function=(lambda f: {"weight": 3, "fillOpacity": 0.8}) if layer.interactive else None,
        popup=popup,
        on_each_feature=label,
        overlay=True,
        show=layer.show,
        smooth_factor=0.5,
        zoom_on_click=False,
        embed=True,
    )


Bounds = tuple[tuple[float, float], tuple[float, float]]


def build_map(layers: Sequence[MapLayer], *, title: str, bounds: Bounds,
              basemaps: Sequence[Basemap], basemap: str | None = None, legend_title: str = "图例",
              vendor_url: str = "/static/vendor", link_text: str = "详情",
              rasters: Sequence[RasterOverlay] = ()) -> folium.Map:
    """A Folium map of ``layers`` over ``basemaps``, fitted to ``bounds`` ((S, W), (N, E)).

    ``basemap`` is the key of the background shown first (the first one when omitted);
    the others wait in the layer control and load nothing until chosen. ``rasters`` are
    PNG tile overlays drawn under the vector layers, each with its legend entry.
    """
    js, css = vendor_assets(vendor_url)
    m = folium.Map(location=None, tiles=None, zoom_start=10, control_scale=False,
                   prefer_canvas=False, width="100%", height="100%")
    m.default_js, m.default_css = js, css
    # the view first: layers added later load tiles for the final view only
    (south, west), (north, east) = bounds
    m.fit_bounds([[south, west], [north, east]])
    first = basemap if basemap in {b.key for b in basemaps} else (basemaps[0].key if basemaps else None)
    for b in basemaps:
        _Basemap(b, show=b.key == first).add_to(m)
    raster_names: list[tuple[str, RasterOverlay]] = []
    for overlay in rasters:
        if overlay.dates:
            tiles = _RasterTiles(overlay)
            tiles.add_to(m)
            raster_names.append((tiles.get_name(), overlay))
    names: list[tuple[str, MapLayer]] = []
    for layer in layers:
        element = (_VectorTiles(layer, vendor_url.rstrip("/"), link_text) if layer.tiles_url
                   else _geojson_layer(layer, link_text))
        element.add_to(m)
        names.append((element.get_name(), layer))
    folium.LayerControl(collapsed=False, position="topright").add_to(m)
    _Controls(title, _legend_html(names, legend_title, raster_names),
              [n for n, _ in names] + [n for n, _ in raster_names]).add_to(m)
    return m


@dataclass(frozen=True)
class PageParts:
    """A rendered map split for embedding in a page: ``<head>`` links, body, script."""

    header: str
    body: str
    script: str


def page_parts(m: folium.Map) -> PageParts:
    """Render ``m`` once and return its head, body and script parts."""
    figure = m.get_root()
    if not isinstance(figure, Figure):  # pragma: no cover - folium always gives a Figure
        raise TypeError("the map has no Figure")
    for child in figure._children.values():
        child.render()
    header = figure.header.render()
    body = figure.html.render()
    script = figure.script.render()
    return PageParts(header=header, body=body, script=script)


