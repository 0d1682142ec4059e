"""A Folium map as one self-contained page: its scripts and stylesheets inlined.

A map page of landeco loads Leaflet from the server's ``/static/vendor``; a notebook or a
file sent by mail has no such server, and the township's network reaches no CDN. Inlined
from the vendored copies, the map draws its layers with no network at all (basemap tiles
aside, which fail quietly to the empty background).

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> from gis.maps import NO_BASEMAP, MapLayer, build_map
>>> vendor = Path(tempfile.mkdtemp())
>>> (vendor / "leaflet").mkdir()
>>> _ = (vendor / "leaflet" / "leaflet.js").write_text("window.L = {}; // </script> inside")
>>> m = build_map([MapLayer(key="a", title="A", geojson={"type": "FeatureCollection", "features": []})],
...               title="示例", bounds=((38, 107), (38.1, 107.1)), basemaps=[NO_BASEMAP])
>>> page = standalone_map(m, vendor)
>>> "/static/vendor" in page.html, "window.L = {}" in page.html, "// </script> inside" in page.html
(False, True, False)
>>> page._repr_html_().startswith("<iframe srcdoc=")
True
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from pathlib import Path

import folium

__all__ = ["StandaloneMap", "standalone_map"]

_SCRIPT = re.compile(r'<script src="(?P<url>[^"]+)"></script>')
_STYLE = re.compile(r'<link rel="stylesheet" href="(?P<url>[^"]+)"\s*/?>')


@dataclass(frozen=True)
class StandaloneMap:
    """A whole HTML page of a map; Jupyter shows it in a frame of ``height`` pixels."""

    html: str = field(repr=False)
    height: int = 600

    def __repr__(self) -> str:
        return f"StandaloneMap({len(self.html):,} characters, height={self.height})"

    def _repr_html_(self) -> str:
        return (f'<iframe srcdoc="{html.escape(self.html)}" style="width:100%;height:{self.height}px;'
                f'border:1px solid #ccc" sandbox="allow-scripts"></iframe>')

    def save(self, path: Path | str) -> Path:
        """Write the page to ``path`` (opens in any browser, offline)."""
        path = Path(path)
        path.write_text(self.html, encoding="utf-8")
        return path


def standalone_map(m: folium.Map, vendor_dir: Path, vendor_url: str = "/static/vendor",
                   height: int = 600) -> StandaloneMap:
    """``m`` (built with ``vendor_url``) with every asset under ``vendor_url`` read from ``vendor_dir``.

    An asset missing from ``vendor_dir`` (the folder is filled by
    ``scripts/install-assets.sh``) is left out rather than linked to a server that is not there.
    """
    prefix = vendor_url.rstrip("/") + "/"
    page = m.get_root().render()

    def local(url: str) -> str | None:
        if not url.startswith(prefix):
            return None
        path = (vendor_dir / url[len(prefix):]).resolve()
        if not path.is_relative_to(vendor_dir.resolve()) or not path.is_file():
            return ""
        return path.read_text(encoding="utf-8")

    def script(match: re.Match[str]) -> str:
        text = local(match["url"])
        if text is None:
            return match[0]
        return "<script>" + re.sub(r"</(script)", r"<\\/\1", text, flags=re.IGNORECASE) + "</script>"

    def style(match: re.Match[str]) -> str:
        text = local(match["url"])
        if text is None:
            return match[0]
        return "<style>" + re.sub(r"</(style)", r"<\\/\1", text, flags=re.IGNORECASE) + "</style>"

    return StandaloneMap(_STYLE.sub(style, _SCRIPT.sub(script, page)), height)
