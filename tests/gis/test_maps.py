"""Folium rendering: own-origin assets, legend, basemaps, vector tiles."""

import json
import re

from gis.maps import (
    NO_BASEMAP,
    LegendItem,
    LegendSection,
    MapLayer,
    TileStyle,
    build_map,
    osm_basemap,
    page_parts,
    tianditu_basemaps,
    vendor_assets,
)

SQUARE = {"type": "Polygon", "coordinates": [[[107, 38], [107.1, 38], [107.1, 38.1], [107, 38.1], [107, 38]]]}
BOUNDS = ((38.0, 107.0), (38.1, 107.1))


def _layer(**kw) -> MapLayer:
    fc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": 7, "geometry": SQUARE,
         "properties": {"code": "NT-7", "name": "八一村",
                        "_style": {"color": "#123456", "fillColor": "#abcdef"}}}]}
    args = {"key": "plots", "title": "柠条地块", "geojson": fc, "popup": (("code", "编号"),),
            "legend": (LegendSection("种植年份", (LegendItem("2015–2016", "#333", "#edf8e9"),)),)}
    return MapLayer(**{**args, **kw})


def _script(parts) -> str:
    """The page script with JSON's \\uXXXX escapes decoded, as the browser reads it."""
    return re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), parts.script)


def _urls(text: str) -> set[str]:
    return set(re.findall(r"""(?:src|href)=["']([^"']+)["']""", text))


def test_every_script_and_stylesheet_comes_from_the_vendor_folder():
    parts = page_parts(build_map([_layer()], title="t", bounds=BOUNDS, basemaps=[NO_BASEMAP],
                                 vendor_url="/static/vendor"))
    urls = _urls(parts.header)
    assert urls, "the page loads Leaflet"
    assert all(u.startswith("/static/vendor/") for u in urls), urls
    assert "/static/vendor/leaflet/leaflet.js" in urls
    assert "https://" not in parts.header + parts.script


def test_vendor_assets_name_what_folium_names():
    import folium

    js, css = vendor_assets()
    assert {n for n, _ in js} <= {n for n, _ in folium.Map.default_js}
    assert {n for n, _ in css} <= {n for n, _ in folium.Map.default_css}
    assert folium.Map.default_js[0][1].startswith("https://"), "folium's own defaults stay untouched"


def test_feature_style_legend_and_popup_reach_the_page():
    script = _script(page_parts(build_map([_layer()], title="总图", bounds=BOUNDS, basemaps=[NO_BASEMAP])))
    assert "#abcdef" in script
    assert "柠条地块" in script and "种植年份" in script and "2015–2016" in script
    assert "总图" in script
    assert '"编号"' in script  # popup alias


def test_village_labels_are_bound_per_feature():
    parts = page_parts(build_map([_layer(label="name")], title="t", bounds=BOUNDS, basemaps=[NO_BASEMAP]))
    assert "bindTooltip" in parts.script and "landeco-village-label" in parts.script


def test_only_the_first_basemap_is_added_and_tianditu_carries_its_key():
    maps = [osm_basemap(), *tianditu_basemaps("KEY123"), NO_BASEMAP]
    parts = page_parts(build_map([_layer()], title="t", bounds=BOUNDS, basemaps=maps, basemap="none"))
    assert "tk=KEY123" in parts.script and "LAYER=cva" in parts.script and "LAYER=cia" in parts.script
    added = re.findall(r"(basemap_\w+)\.addTo", parts.script)
    assert len(added) == 1, added
    assert "天地图矢量" in _script(parts) and "无底图" in _script(parts)


def test_a_tiled_layer_draws_from_the_tile_url_with_vectorgrid():
    layer = _layer(geojson=None, tiles_url="/collections/plots/tiles/WebMercatorQuad/{z}/{x}/{y}",
                   tile_style=TileStyle("planted_year", breaks=(2015, 2018, 2023), colors=("#aaa", "#bbb")))
    parts = page_parts(build_map([layer], title="t", bounds=BOUNDS, basemaps=[NO_BASEMAP]))
    assert "/static/vendor/vectorgrid/Leaflet.VectorGrid.bundled.min.js" in _urls(parts.header)
    assert "L.vectorGrid.protobuf" in parts.script
    assert "/collections/plots/tiles/WebMercatorQuad/{z}/{x}/{y}" in parts.script
    assert '"plots"' in parts.script  # the MVT layer name is the collection id


def test_an_empty_layer_still_renders_with_its_legend():
    empty = _layer(geojson={"type": "FeatureCollection", "features": []})
    script = _script(page_parts(build_map([empty], title="t", bounds=BOUNDS, basemaps=[NO_BASEMAP])))
    assert "柠条地块" in script


def test_values_from_files_are_escaped_and_popups_link_to_the_feature():
    layer = _layer(popup=(("code", "编号"), ("name", "名称")), label="name", link="/maps/plots/features/{id}")
    layer.geojson["features"][0]["properties"]["name"] = '<img src=x onerror="alert(1)">'
    script = _script(page_parts(build_map([layer], title="t", bounds=BOUNDS, basemaps=[NO_BASEMAP])))
    assert "<img" not in script and "&lt;img src=x" in script
    assert '<a href=\\"/maps/plots/features/7\\">详情</a>' in script
    assert "#abcdef" in script and '"_style"' not in script, "styles live in the style table only"


def _raster_overlay(show=False):
    from gis.maps import RasterDate, RasterOverlay
    from gis.raster_tiles import legend

    dates = tuple(RasterDate(id=i, acquired=f"202{i}-07-15", bounds=((38.1, 107.1), (38.2, 107.2)),
                             tiles_url=f"/rasters/{i}/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}.png",
                             legend=legend("ndvi", "zh")) for i in (1, 2))
    return RasterOverlay(key="raster_ndvi", title="归一化植被指数 (NDVI)", dates=dates, show=show)


def test_a_rasters_file_name_is_inert_in_the_script_and_the_layer_control():
    import dataclasses

    hostile = '</script><img src=x onerror="alert(1)">.tif'
    overlay = _raster_overlay()
    overlay = dataclasses.replace(overlay, title=hostile, dates=tuple(
        dataclasses.replace(d, label=hostile) for d in overlay.dates))
    parts = page_parts(build_map([_layer()], title="t", bounds=BOUNDS, basemaps=[NO_BASEMAP],
                                 rasters=[overlay]))
    assert "</script" not in parts.script and "<img" not in parts.script
    # kept as text in the controls' data (the page's script sets it as textContent and title)
    config = json.loads(re.search(r"var cfg = (\{.*?\});\n", parts.script).group(1))
    assert config["dates"][0]["label"] == hostile and config["title"] == hostile
    # the layer control's label is HTML: escaped there
    overlays = re.search(r"overlays : +\{(.*?)\}", parts.script, re.S).group(1)
    names = [json.loads(k) for k in re.findall(r'^\s*(".*?") :', overlays, re.M)]
    assert names[0].startswith("&lt;/script&gt;&lt;img src=x onerror=&quot;alert(1)&quot;&gt;.tif · ")


def test_raster_overlay_is_a_tile_layer_with_its_date_and_legend():
    m = build_map([_layer()], title="t", bounds=BOUNDS, basemaps=[NO_BASEMAP], rasters=[_raster_overlay()])
    parts = page_parts(m)
    assert "/rasters/2/tiles/WebMercatorQuad/{z}/{x}/{y}.png" in parts.script  # the newest shown first
    assert "/rasters/1/tiles/WebMercatorQuad/{z}/{x}/{y}.png" in parts.script  # the slider's other date
    assert "window.landecoRasters" in parts.script
    # the layer control's label carries the date, in a span the date slider rewrites
    overlays = re.search(r"overlays : +\{(.*?)\}", parts.script, re.S).group(1)
    names = [json.loads(k) for k in re.findall(r'^\s*(".*?") :', overlays, re.M)]
    assert names[0] == ('归一化植被指数 (NDVI) · <span class="landeco-raster-date" data-raster="raster_ndvi">'
                        "2022-07-15</span>")
    legend = json.loads(re.search(r"panel.innerHTML = (\".*?\");", parts.script).group(1))
    legend_html = re.search(r'<div class="[^"]*landeco-legend-raster.*?</div></div>', legend).group(0)
    assert "linear-gradient(to right, #8c510a 0.0%" in legend_html
    assert 'style="display:none"' in legend_html  # off by default: its legend entry too
    assert "2022-07-15" in legend_html and "茂密植被" in legend_html
    # not added to the map unless shown
    name = re.search(r"var (raster_tiles_\w+) = ", parts.script).group(1)
    assert f"{name}.addTo(" not in parts.script
    shown = page_parts(build_map([_layer()], title="t", bounds=BOUNDS, basemaps=[NO_BASEMAP],
                                 rasters=[_raster_overlay(show=True)])).script
    shown_name = re.search(r"var (raster_tiles_\w+) = ", shown).group(1)
    assert f"{shown_name}.addTo(" in shown
