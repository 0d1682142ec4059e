"""Printed maps: real images with Chinese text in a CJK font, legend, scale bar, arrow."""

import io
import warnings

import numpy as np
import pytest
from matplotlib import font_manager
from PIL import Image

from gis.maps import LegendItem, LegendSection, MapLayer
from gis.printing import _nice_length, cjk_font, print_map


def _square(x, y, d=0.05):
    return {"type": "Polygon", "coordinates": [[[x, y], [x + d, y], [x + d, y + d], [x, y + d], [x, y]]]}


LAYER = MapLayer(
    key="plots", title="柠条地块",
    geojson={"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": i, "geometry": _square(107 + i * 0.07, 38.1),
         "properties": {"name": f"沙章图村{i}",
                        "_style": {"color": "#333333", "fillColor": "#b30000", "fillOpacity": 0.8,
                                   "dashArray": "6 4" if i else None}}}
        for i in range(3)]},
    legend=(LegendSection("沉陷程度", (
        LegendItem("重度", "#333333", "#b30000"),
        LegendItem("休牧（休牧期外）", "#fc8d59", "#fc8d59", 0.15, 2, "6 4"))),),
    label="name")


def test_the_cjk_font_is_a_real_font_file():
    family = cjk_font()
    path = font_manager.findfont(font_manager.FontProperties(family=family), fallback_to_default=False)
    assert "CJK" in path or "Han" in path or "WenQuanYi" in path


def test_png_is_a_full_page_with_coloured_features_and_no_missing_glyphs():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns "Glyph ... missing from font(s)" for tofu
        png = print_map([LAYER], title="采煤沉陷区 · 示例", subtitle="制图日期 2026-11-01")
    image = Image.open(io.BytesIO(png)).convert("RGB")
    assert image.size == (int(11.69 * 150), int(8.27 * 150))  # A4 landscape at 150 dpi
    pixels = np.asarray(image).reshape(-1, 3)
    assert (pixels != 255).any(axis=1).mean() > 0.01, "more than a blank page"
    reddish = (pixels[:, 0] > 150) & (pixels[:, 1] < 120) & (pixels[:, 2] < 120)
    assert reddish.sum() > 500, "the features' fill colour is on the page"


def test_pdf_embeds_the_cjk_font():
    pdf = print_map([LAYER], title="柠条地块", fmt="pdf")
    assert pdf.startswith(b"%PDF") and b"NotoSansCJK" in pdf


def test_english_and_empty_input():
    png = print_map([LAYER], title="Caragana plots", lang="en")
    assert png.startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="nothing to print"):
        print_map([MapLayer(key="x", title="x", geojson={"type": "FeatureCollection", "features": []})],
                  title="x")


@pytest.mark.parametrize(("metres", "nice"), [(9_300, 5_000), (12_000, 10_000), (2_500, 2_000), (140, 100)])
def test_scale_bar_lengths_are_round(metres, nice):
    assert _nice_length(metres) == nice


def test_one_path_per_feature_with_its_holes():
    import geopandas as gpd
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import PathCollection
    from matplotlib.figure import Figure
    from shapely.geometry import MultiPolygon, Polygon

    from gis.printing import _paths

    holed = Polygon([(0, 0), (4, 0), (4, 4), (0, 4)], [[(1, 1), (2, 1), (2, 2), (1, 2)]])
    pair = MultiPolygon([Polygon([(5, 5), (6, 5), (6, 6)]), Polygon([(7, 7), (8, 7), (8, 8)])])
    paths = _paths(gpd.GeoSeries([holed, pair, Polygon([(9, 9), (10, 9), (10, 10)])]))
    assert len(paths) == 3
    assert [int((p.codes == p.MOVETO).sum()) for p in paths] == [2, 2, 1]
    fig = Figure(figsize=(4, 4), dpi=50)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1), xlim=(0, 4), ylim=(0, 4))
    ax.add_collection(PathCollection(paths[:1], facecolors=["red"], edgecolors="none"))
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())
    assert tuple(pixels[200 - 150, 150][:3]) == (255, 0, 0), "the polygon is filled"
    assert tuple(pixels[200 - 75, 75][:3]) == (255, 255, 255), "its hole is not"
