"""PNG maps, all drawn with numpy and Pillow in milliseconds: the composite preview and the area's outline (once
per area-year of a batch), and the published choropleth of the latest statistics (``ndvi_latest_map.png``)."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import matplotlib
import numpy as np
import pandas as pd
import shapely
from PIL import Image, ImageDraw, ImageFont
from shapely.geometry.base import BaseGeometry

#: The composite preview's colours: RdYlGn from NDVI ``NDVI_RANGE[0]`` (red) to ``NDVI_RANGE[1]`` (green),
#: clipped outside; pixels without a clear observation are ``NO_DATA_RGB``.
NDVI_RANGE = (-0.2, 0.9)
NO_DATA_RGB = (187, 187, 187)
#: Colour levels of the ramp: with the no-data grey and the white of the gap above the ramp they fill an 8-bit
#: palette, so the preview is a palette PNG (a third of RGB's bytes to encode and to keep in the event log: 66
#: against 141 kB, 1.6 against 9 ms for a 300 × 300 px noisy composite) at the ramp's full 8-bit resolution.
LEVELS = 254
_PALETTE = np.concatenate([
    (matplotlib.colormaps["RdYlGn"](np.linspace(0, 1, LEVELS))[:, :3] * 255).round(),
    [NO_DATA_RGB, (255, 255, 255)]]).astype(np.uint8)
_NO_DATA, _WHITE = LEVELS, LEVELS + 1
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
    index = ndvi_levels(ndvi[::step, ::step])
    width = index.shape[1]
    ramp = np.broadcast_to(np.linspace(0, LEVELS - 1, width).round().astype(np.uint8), (LEGEND_PX, width))
    image = Image.fromarray(np.concatenate([index, np.full((2, width), _WHITE, np.uint8), ramp]), "P")
    image.putpalette(_PALETTE.tobytes())
    return _png(image)


def ndvi_levels(ndvi: np.ndarray) -> np.ndarray:
    """Palette index (uint8, rows × cols) of each pixel of an NDVI array on the preview's colour scale: the
    nearest of ``LEVELS`` steps over ``NDVI_RANGE`` (clipped outside), ``LEVELS`` where NaN."""
    low, high = NDVI_RANGE
    valid = np.isfinite(ndvi)
    index = np.full(ndvi.shape, _NO_DATA, dtype=np.uint8)
    index[valid] = np.clip(np.round((ndvi[valid] - low) / (high - low) * (LEVELS - 1)), 0, LEVELS - 1)
    return index


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
    frame = _Frame(minx, maxy, scale, 2, 2)
    for shape in shapes:
        _draw_polygons(draw, shape, frame, fill, "white", edge)
    return _png(image)


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=3)
    return buf.getvalue()


@dataclass(frozen=True)
class _Frame:
    """World coordinates (a projected CRS, north up) to image pixels: ``(x0, y0)`` is where (minx, maxy) lands,
    ``scale`` pixels per unit."""

    minx: float
    maxy: float
    scale: float
    x0: float
    y0: float

    def point(self, x: float, y: float) -> tuple[float, float]:
        return self.x0 + (x - self.minx) * self.scale, self.y0 + (self.maxy - y) * self.scale

    def ring(self, ring) -> list[tuple[float, float]]:
        xy = np.asarray(ring.coords)[:, :2]
        return list(zip(*self.point(xy[:, 0], xy[:, 1]), strict=True))


def _draw_polygons(draw: ImageDraw.ImageDraw, geometry: BaseGeometry | None, frame: _Frame, fill: Any,
                   hole_fill: Any, outline: Any = None, width: int = 1) -> None:
    """Each polygon part of ``geometry``: its exterior filled ``fill``, its holes ``hole_fill``, edged ``outline``
    (``width`` px; None: no edge)."""
    for polygon in shapely.get_parts(geometry) if geometry is not None else ():
        if polygon.geom_type != "Polygon" or polygon.is_empty:
            continue
        draw.polygon(frame.ring(polygon.exterior), fill=fill, outline=outline, width=width)
        for hole in polygon.interiors:
            draw.polygon(frame.ring(hole), fill=hole_fill, outline=outline, width=width)


#: Above this many districts with a value the PNG carries no value labels: they would overlap into a grey
#: smear.
MAX_LABELS = 300
#: The latest map's size, px (width, height), and its supersampling factor: drawn at ``SUPERSAMPLE`` times the
#: size and reduced, which smooths the polygon edges and the text.
MAP_PX = (700, 600)
SUPERSAMPLE = 2
#: Colour of a district without a value (hatched white).
NO_VALUE_RGB = (221, 221, 221)
_FONT_PATH = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"


def choropleth_png(stats: gpd.GeoDataFrame, column: str, breaks: dict, title: str, path: Path | None = None) -> bytes:
    """A choropleth of ``column`` classed by ``breaks`` (``bins`` are upper bounds, as in ``breaks.json`` and
    the web map; districts without a value hatched grey) with a legend of the classes, each district labelled
    with its value when there are at most :data:`MAX_LABELS` of them. Any projected CRS, north up, aspect kept.

    Drawn with Pillow in milliseconds (matplotlib took 0.1-0.2 s per area, most of a latest export of a small
    area, and 0.9 s at 14,000 districts)."""
    png = _choropleth_png(stats, column, breaks, title)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png)
    return png


def class_index(values: np.ndarray, bins: list[float]) -> np.ndarray:
    """The class of each value: ``i`` where ``bins[i - 1] < value <= bins[i]`` (``bins`` are upper bounds; a
    value above the last bound is put in the last class)."""
    return np.minimum(np.searchsorted(np.asarray(bins, dtype=float), values, side="left"), len(bins) - 1)


def _choropleth_png(stats: gpd.GeoDataFrame, column: str, breaks: dict, title: str) -> bytes:
    ss = SUPERSAMPLE
    width, height = MAP_PX[0] * ss, MAP_PX[1] * ss
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(str(_FONT_PATH), 11 * ss)
    small = ImageFont.truetype(str(_FONT_PATH), 8 * ss)
    draw.text((width // 2, 10 * ss), title, fill="black", anchor="mt", font=ImageFont.truetype(str(_FONT_PATH),
                                                                                                15 * ss))
    # the map in the frame left of the legend, scaled to fit and centred
    left, top, right, bottom = 8 * ss, 40 * ss, width - 160 * ss, height - 8 * ss
    minx, miny, maxx, maxy = stats.total_bounds
    scale = min((right - left) / max(maxx - minx, 1e-9), (bottom - top) / max(maxy - miny, 1e-9))
    frame = _Frame(minx, maxy, scale, left + ((right - left) - (maxx - minx) * scale) / 2,
                   top + ((bottom - top) - (maxy - miny) * scale) / 2)
    values = pd.to_numeric(stats[column], errors="coerce").astype(float).to_numpy()
    has = np.isfinite(values)
    colours = breaks["colors"]  # hex strings, as Pillow takes them
    classes = class_index(values, breaks["bins"])
    labelled = int(has.sum()) <= MAX_LABELS
    edge = ("white", ss) if labelled else (None, 0)  # no borders where districts are many and small
    no_value = Image.new("L", (width, height), 0)  # where districts without a value lie: hatched afterwards
    mark = ImageDraw.Draw(no_value)
    for geometry, valued, cls in zip(stats.geometry, has, classes, strict=True):
        _draw_polygons(draw, geometry, frame, colours[cls] if valued else NO_VALUE_RGB, "white", *edge)
        if not valued:
            _draw_polygons(mark, geometry, frame, 255, 0)
    if not has.all():
        _hatch(image, no_value, 6 * ss, ss)
    if labelled:
        for value, point in zip(values[has], stats.geometry[has].representative_point(), strict=True):
            draw.text(frame.point(point.x, point.y), f"{value:.2f}", fill="black", anchor="mm", font=small)
    _legend(draw, breaks, colours, column, not has.all(), (width - 150 * ss, top + 20 * ss), font, ss)
    image = image.reduce(ss) if ss > 1 else image  # box filter: each pixel the mean of its ss × ss
    return _png(image)


def _hatch(image: Image.Image, where: Image.Image, spacing: int, line: int) -> None:
    """White diagonal lines over ``image`` where the mask ``where`` is set."""
    lines = Image.new("L", image.size, 0)
    draw = ImageDraw.Draw(lines)
    for offset in range(-image.size[1], image.size[0], spacing):
        draw.line([(offset, image.size[1]), (offset + image.size[1], 0)], fill=255, width=line)
    image.paste((255, 255, 255), mask=Image.fromarray(np.minimum(np.asarray(lines), np.asarray(where))))


def _legend(draw: ImageDraw.ImageDraw, breaks: dict, colours: list[str], column: str,
            no_value: bool, origin: tuple[int, int], font: ImageFont.FreeTypeFont, ss: int) -> None:
    """The classes top (highest) to bottom, each a swatch and its range; then "no value" when any."""
    x, y = origin
    draw.text((x, y), column.replace("_", " "), fill="black", font=font)
    y += 22 * ss
    lows = [breaks["min"], *breaks["bins"][:-1]]
    rows = [(colours[i], f"{lows[i]:.2f} – {breaks['bins'][i]:.2f}") for i in range(len(breaks["bins"]))][::-1]
    if no_value:
        rows.append((NO_VALUE_RGB, "no value"))
    for colour, text in rows:
        draw.rectangle((x, y, x + 22 * ss, y + 14 * ss), fill=colour, outline=(120, 120, 120))
        draw.text((x + 30 * ss, y + 7 * ss), text, fill="black", anchor="lm", font=font)
        y += 20 * ss


def markdown_image(png: bytes, alt: str) -> str:
    """Markdown that embeds ``png`` (shown by the Dagster UI in asset metadata)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


