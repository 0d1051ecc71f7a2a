"""PNG previews: the composite raster and the area's outline (numpy and Pillow: a few milliseconds each, drawn
once per area-year of a batch), and the choropleth of the latest statistics (matplotlib: a published map)."""

from __future__ import annotations

import base64
import io
import threading
from collections.abc import Iterable
from pathlib import Path

import geopandas as gpd
import matplotlib
import numpy as np
import shapely
from PIL import Image, ImageDraw
from shapely.geometry.base import BaseGeometry

matplotlib.use("Agg")
from matplotlib.cm import ScalarMappable  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.colors import BoundaryNorm, ListedColormap  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.path import Path as MplPath  # noqa: E402

#: matplotlib is not thread-safe (font cache, text layout caches); a batch works on threads, so each figure is
#: drawn and saved under this lock.
_DRAWING = threading.Lock()

#: The composite preview's colours: RdYlGn from NDVI ``NDVI_RANGE[0]`` (red) to ``NDVI_RANGE[1]`` (green),
#: clipped outside; pixels without a clear observation are ``NO_DATA_RGB``.
NDVI_RANGE = (-0.2, 0.9)
NO_DATA_RGB = (187, 187, 187)
_LUT = (matplotlib.colormaps["RdYlGn"](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8)
#: Height of the colour ramp under the composite preview, px (NDVI_RANGE from left to right).
LEGEND_PX = 12
#: Longer side of the composite preview, px: the size the Dagster UI shows it at (an 800 px PNG of an 8 km area
#: took 0.1 s to encode, once per area-year of a batch).
PREVIEW_PX = 400


def composite_png(ndvi: np.ndarray, max_pixels: int = PREVIEW_PX) -> bytes:
    """A PNG of an NDVI array (``NDVI_RANGE`` on RdYlGn, NaN grey), decimated so the longer side is at most
    ``max_pixels``, with the colour ramp as a strip under it. One image pixel per (decimated) array pixel, north
    up as stored."""
    step = max(1, int(np.ceil(max(ndvi.shape) / max_pixels)))
    rgb = ndvi_rgb(ndvi[::step, ::step])
    ramp = _LUT[np.linspace(0, 255, rgb.shape[1]).round().astype(int)]
    legend = np.broadcast_to(ramp, (LEGEND_PX, *ramp.shape))
    return _png(Image.fromarray(np.concatenate([rgb, np.full((2, rgb.shape[1], 3), 255, np.uint8), legend])))


def ndvi_rgb(ndvi: np.ndarray) -> np.ndarray:
    """RGB (uint8, rows × cols × 3) of an NDVI array on the preview's colour scale."""
    low, high = NDVI_RANGE
    valid = np.isfinite(ndvi)
    index = np.zeros(ndvi.shape, dtype=np.intp)
    index[valid] = np.clip(np.round((ndvi[valid] - low) / (high - low) * 255), 0, 255)
    rgb = _LUT[index]
    rgb[~valid] = NO_DATA_RGB
    return rgb


def outline_png(shapes: Iterable[BaseGeometry], max_pixels: int = 400, fill: tuple[int, int, int] = (158, 202, 225),
                edge: tuple[int, int, int] = (49, 130, 189)) -> bytes:
    """A PNG of polygons (any projected CRS; north up, aspect kept), the longer side ``max_pixels``: filled
    ``fill``, edged ``edge``, holes left white."""
    shapes = [s for s in shapes if s is not None and not s.is_empty]
    minx, miny, maxx, maxy = gpd.GeoSeries(shapes).total_bounds if shapes else (0, 0, 1, 1)
    scale = (max_pixels - 4) / max(maxx - minx, maxy - miny, 1e-9)
    size = (max(1, int(np.ceil((maxx - minx) * scale)) + 4), max(1, int(np.ceil((maxy - miny) * scale)) + 4))
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)

    def pixels(ring) -> list[tuple[float, float]]:
        xy = np.asarray(ring.coords)[:, :2]
        return list(zip((xy[:, 0] - minx) * scale + 2, (maxy - xy[:, 1]) * scale + 2, strict=True))

    for shape in shapes:
        for polygon in getattr(shape, "geoms", [shape]):
            if polygon.geom_type != "Polygon":
                continue
            draw.polygon(pixels(polygon.exterior), fill=fill, outline=edge)
            for hole in polygon.interiors:
                draw.polygon(pixels(hole), fill="white", outline=edge)
    return _png(image)


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=3)
    return buf.getvalue()


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
    # a fixed layout: the map on the left, the colour bar on the right, drawn once (``bbox_inches="tight"``
    # drew the figure twice, and axes with ticks cost as much again: 0.17 s per area, most of a latest export)
    fig = Figure(figsize=(7, 6), dpi=100)
    ax = fig.add_axes((0.02, 0.02, 0.8, 0.88))
    ax.set_axis_off()
    has = stats[column].notna().to_numpy()
    labelled = int(has.sum()) <= MAX_LABELS
    border_width = 0.8 if labelled else 0.1  # thin borders where districts are many and small
    # one collection per kind of district, drawn once by savefig (geopandas' plot draws the figure each call)
    if (~has).any():
        ax.add_collection(PathCollection(_paths(stats.geometry[~has]), facecolor="#dddddd", edgecolor="white",
                                         hatch="//", linewidth=border_width))
    if has.any():
        values = stats.loc[has, column].astype(float).to_numpy()
        ax.add_collection(PathCollection(_paths(stats.geometry[has]), array=values, cmap=cmap, norm=norm,
                                         edgecolor="white", linewidth=border_width))
    minx, miny, maxx, maxy = stats.total_bounds
    ax.set_xlim(minx, maxx)
    ax.set_ylim(miny, maxy)
    ax.set_aspect("equal")
    if labelled:
        points = stats.geometry[has].representative_point()
        for value, p in zip(stats.loc[has, column], points, strict=True):
            ax.annotate(f"{value:.2f}", (p.x, p.y), ha="center", fontsize=7)
    fig.colorbar(ScalarMappable(cmap=cmap, norm=norm), cax=fig.add_axes((0.86, 0.18, 0.03, 0.6)), label=column)
    fig.suptitle(title, y=0.96)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _paths(geometries: gpd.GeoSeries) -> list[MplPath]:
    """One compound path (exterior and holes) per polygon part of ``geometries``."""
    paths = []
    for polygon in shapely.get_parts(geometries.to_numpy()):
        if polygon.geom_type == "Polygon" and not polygon.is_empty:
            rings = [polygon.exterior, *polygon.interiors]
            paths.append(MplPath.make_compound_path(*(MplPath(np.asarray(r.coords)[:, :2], closed=True)
                                                      for r in rings)))
    return paths


def markdown_image(png: bytes, alt: str) -> str:
    """Markdown that embeds ``png`` (shown by the Dagster UI in asset metadata)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


