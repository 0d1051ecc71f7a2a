"""PNG previews: the composite raster and the choropleth of the latest statistics."""

from __future__ import annotations

import base64
import io
import threading
from pathlib import Path

import geopandas as gpd
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import BoundaryNorm, ListedColormap  # noqa: E402

#: pyplot keeps global state and matplotlib is not thread-safe; a batch composites area-years on threads
#: (``compute.area_years_at_once``), so each figure is drawn and saved under this lock.
_DRAWING = threading.Lock()


def composite_png(ndvi: np.ndarray, title: str, max_pixels: int = 800) -> bytes:
    """A small PNG of an NDVI array (NaN = grey), decimated so the longer side is at most ``max_pixels``."""
    with _DRAWING:
        return _composite_png(ndvi, title, max_pixels)


def _composite_png(ndvi: np.ndarray, title: str, max_pixels: int) -> bytes:
    step = max(1, int(np.ceil(max(ndvi.shape) / max_pixels)))
    fig, ax = plt.subplots(figsize=(6, 6 * ndvi.shape[0] / max(ndvi.shape[1], 1) + 0.6), dpi=100)
    cmap = plt.get_cmap("RdYlGn").copy()
    cmap.set_bad("#bbbbbb")
    im = ax.imshow(np.ma.masked_invalid(ndvi[::step, ::step]), cmap=cmap, vmin=-0.2, vmax=0.9)
    ax.set_title(title)
    ax.set_axis_off()
    fig.colorbar(im, ax=ax, shrink=0.7, label="NDVI")
    return _png(fig)


#: Above this many districts with a value the PNG carries no value labels: they would overlap into a grey
#: smear, and drawing 14,000 of them (a national layer of buurten) took matplotlib about 25 s.
MAX_LABELS = 300


def choropleth_png(stats: gpd.GeoDataFrame, column: str, breaks: dict, title: str, path: Path | None = None) -> bytes:
    """A choropleth of ``column`` classed by ``breaks`` (districts without a value hatched grey), each district
    labelled with its value when there are at most :data:`MAX_LABELS` of them."""
    with _DRAWING:
        png = _choropleth_png(stats, column, breaks, title)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png)
    return png


def _choropleth_png(stats: gpd.GeoDataFrame, column: str, breaks: dict, title: str) -> bytes:
    edges = [breaks["min"] - 1e-9, *breaks["bins"]]
    cmap = ListedColormap(breaks["colors"])
    norm = BoundaryNorm(edges, cmap.N)
    fig, ax = plt.subplots(figsize=(7, 6), dpi=100)
    has = stats[column].notna()
    labelled = int(has.sum()) <= MAX_LABELS
    border_width = 0.8 if labelled else 0.1  # thin borders where districts are many and small
    if (~has).any():
        stats[~has].plot(ax=ax, color="#dddddd", edgecolor="white", hatch="//", linewidth=border_width)
    if has.any():
        stats[has].plot(ax=ax, column=column, cmap=cmap, norm=norm, edgecolor="white", linewidth=border_width)
    if labelled:
        points = stats[has].geometry.representative_point()
        for value, p in zip(stats.loc[has, column], points, strict=True):
            ax.annotate(f"{value:.2f}", (p.x, p.y), ha="center", fontsize=7)
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=norm)
    fig.colorbar(sm, ax=ax, shrink=0.7, label=column)
    ax.set_title(title)
    ax.set_axis_off()
    return _png(fig)


def markdown_image(png: bytes, alt: str) -> str:
    """Markdown that embeds ``png`` (shown by the Dagster UI in asset metadata)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def _png(fig: plt.Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()
