"""``ndvi_map.html``: a self-contained interactive web map (Leaflet inlined; works with no network).

Leaflet comes from PyPI's ``xstatic-leaflet``; its JS and CSS (with the control images as data URIs) are inlined,
so the page loads nothing from a CDN. A Content-Security-Policy allows only the page's own scripts (by hash),
inline styles, data-URI images and, when configured, the basemap tile server. District names and codes reach the
page only as JSON data in a non-executed ``<script type="application/json">`` block, with ``<``, ``>`` and ``&``
escaped so nothing can close that block, and the page's script writes them as DOM text, never as HTML.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import string
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import geopandas as gpd
import xstatic.pkg.leaflet as xstatic_leaflet

from ingestion.atomic import write_text
from ingestion.export.webmap_data import map_payload

MAP_FILE = "ndvi_map.html"
LEAFLET_DIR = Path(xstatic_leaflet.BASE_DIR)
LEAFLET_VERSION = xstatic_leaflet.VERSION

_PAGE = string.Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="$csp">
<title>$title</title>
<style>$leaflet_css</style>
<style>$map_css</style>
</head>
<body>
<header><h1>$title</h1><p>$subtitle</p></header>
<div id="map"></div>
<script type="application/json" id="ndvi-data">$data</script>
<script>$leaflet_js</script>
<script>$map_js</script>
</body>
</html>
""")


def script_json(data: Any) -> str:
    """JSON that is safe inside a ``<script>`` element: ``<``, ``>``, ``&``, U+2028/9 as ``\\uXXXX`` escapes."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return text


@cache
def leaflet_assets() -> tuple[str, str]:
    """Leaflet's JS (without its source-map comment) and CSS (images as data URIs)."""
    js = (LEAFLET_DIR / "leaflet.js").read_text(encoding="utf-8")
    js = re.sub(r"//# sourceMappingURL=\S+\s*$", "", js)
    css = (LEAFLET_DIR / "leaflet.css").read_text(encoding="utf-8")

    def inline(match: re.Match) -> str:
        image = LEAFLET_DIR / match.group(1)
        return f"url(data:image/png;base64,{base64.b64encode(image.read_bytes()).decode()})"

    return js, re.sub(r"url\((images/[\w.-]+\.png)\)", inline, css)


def _own_asset(name: str) -> str:
    return resources.files("ingestion.export").joinpath("webmap_static", name).read_text(encoding="utf-8")


def _script_hash(script: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode() + "'"


def tile_source(basemap_url: str) -> str:
    """The CSP source that allows a tile URL template such as ``https://{s}.tile.example.org/{z}/{x}/{y}.png``."""
    parts = urlsplit(basemap_url)
    host = parts.netloc.replace("{s}", "*")
    if parts.scheme not in ("http", "https") or not host or re.search(r"[{}\s;,']", host):
        return "https:" if parts.scheme != "http" else "http:"
    return f"{parts.scheme}://{host}"


def render_page(payload: Mapping[str, Any], subtitle: str = "") -> str:
    """The complete HTML page for ``payload`` (``webmap_data.map_payload``)."""
    leaflet_js, leaflet_css = leaflet_assets()
    map_js = _own_asset("map.js")
    images = "data:" + (f" {tile_source(payload['basemap_url'])}" if payload.get("basemap_url") else "")
    csp = (f"default-src 'none'; script-src {_script_hash(leaflet_js)} {_script_hash(map_js)}; "
           f"style-src 'unsafe-inline'; img-src {images}; base-uri 'none'; form-action 'none'")
    return _PAGE.substitute(
        csp=html.escape(csp), title=html.escape(str(payload["title"])), subtitle=html.escape(subtitle),
        leaflet_css=leaflet_css, map_css=_own_asset("map.css"), data=script_json(payload),
        leaflet_js=leaflet_js, map_js=map_js)


def write_web_map(folder: Path, latest: gpd.GeoDataFrame, yearly: Iterable[Mapping[str, Any]],
                  change: Iterable[Mapping[str, Any]], breaks: Mapping[str, Any], *, title: str,
                  decimals: int = 2, basemap_url: str | None = None,
                  labels: Mapping[str, str] | None = None) -> Path:
    """Write ``folder/ndvi_map.html`` atomically (temporary file, then rename) and return its path.

    ``latest``: the latest layer (one row per current district, any CRS); ``yearly``/``change``: rows of
    ``analytics.ndvi_stats_yearly`` and ``analytics.ndvi_change``; ``breaks``: the content of ``breaks.json``
    (its ``indicators`` feed the indicator selector); ``labels``: green-share class name -> legend label.
    """
    payload = map_payload(latest, yearly, change, breaks, title=title, decimals=decimals, basemap_url=basemap_url,
                          indicators=breaks.get("indicators"), labels=labels)
    years = payload["years"]
    subtitle = (f"{len(payload['districts']['features'])} districts · years {', '.join(years) or 'none'} · "
                f"classes: {breaks['scheme']}, k={breaks['k']} on latest mean NDVI · Leaflet {LEAFLET_VERSION}")
    return write_text(folder / MAP_FILE, render_page(payload, subtitle))
