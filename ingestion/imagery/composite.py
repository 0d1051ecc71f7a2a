"""Yearly NDVI median composite on an area's common grid, read lazily and chunked in space.

Per item: windowed reads of red, nir and SCL onto the target grid (odc-stac, dask), radiometry and the SCL
mask give an NDVI layer with NaN where the pixel is not clear. Per acquisition day the items (partial tiles,
``_0``/``_1`` products) are mosaicked so each pixel gets at most one observation per day. The composite is
the per-pixel median over days, with the count of those observations. The item axis is never chunked (a
median needs every observation of a pixel), the spatial axes are, so memory depends on the chunk size and
the number of items, not on the area.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import dask.array as da
import numpy as np
import odc.stac
import pystac
import rasterio
import rasterio.errors
from odc.geo.geobox import GeoBox

from ingestion.imagery.masking import DEFAULT_MASKED_CLASSES, clear_mask
from ingestion.imagery.radiometry import Radiometry, ndvi, radiometry, reflectance
from ingestion.sources.base import acquired

log = logging.getLogger(__name__)

DEFAULT_CHUNK = 512


class CorruptImageError(RuntimeError):
    """An asset could not be read; the message names the item and the href."""


@dataclass
class Composite:
    """Median NDVI (float32, NaN = no clear observation) and clear-day count (uint16) on ``geobox``."""

    ndvi: np.ndarray
    count: np.ndarray
    geobox: GeoBox
    days: list[dt.date]
    radiometry: dict[str, str]

    @property
    def valid_fraction(self) -> float:
        """Share of grid pixels with at least one clear observation (0..1)."""
        return float(np.count_nonzero(self.count) / self.count.size) if self.count.size else 0.0


def acquisition_day(item: pystac.Item) -> dt.date:
    """UTC date of acquisition (Sentinel-2 passes over Europe late morning, so UTC date = local date)."""
    day = acquired(item)
    if day is None:
        raise ValueError(f"item {item.id} has no datetime")
    return day


def _mosaic_order(item: pystac.Item) -> tuple:
    """Within a day: newest processing (higher ``s2:sequence``) first, then the least cloudy."""
    try:
        sequence = int(item.properties.get("s2:sequence", 0))
    except (TypeError, ValueError):
        sequence = 0
    return (-sequence, item.properties.get("eo:cloud_cover", 100.0), item.id)


def composite_pixels(stack: np.ndarray, day_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median and observation count over days of an (items, y, x) NDVI stack (NaN = not clear).

    ``day_index[i]`` is the day number of item ``i``; items of one day must be ordered by preference.
    Each day contributes the first clear value of its items, so duplicates never count twice.
    """
    days = np.unique(day_index)
    per_day = np.full((len(days), *stack.shape[1:]), np.nan, dtype=np.float32)
    for d_pos, day in enumerate(days):
        for layer in stack[day_index == day]:
            fill = np.isnan(per_day[d_pos]) & ~np.isnan(layer)
            per_day[d_pos][fill] = layer[fill]
    count = np.count_nonzero(~np.isnan(per_day), axis=0).astype(np.uint16)
    median = np.full(stack.shape[1:], np.nan, dtype=np.float32)
    has = count > 0
    if has.any():
        median[has] = np.nanmedian(per_day[:, has], axis=0)
    return median, count


def _clear_ndvi_block(red: np.ndarray, nir: np.ndarray, scl: np.ndarray, red_rad: Radiometry,
                      nir_rad: Radiometry, masked: frozenset[int]) -> np.ndarray:
    value = ndvi(reflectance(red, red_rad), reflectance(nir, nir_rad))
    return np.where(clear_mask(scl, masked), value, np.float32(np.nan))


def _item_ndvi(item: pystac.Item, geobox: GeoBox, masked: frozenset[int], chunk: int,
               red_rad: Radiometry, nir_rad: Radiometry) -> da.Array:
    ds = odc.stac.load([item], bands=["red", "nir", "scl"], geobox=geobox, chunks={"x": chunk, "y": chunk},
                       resampling="nearest", groupby="id", dtype="uint16", nodata=0)
    return da.map_blocks(_clear_ndvi_block, ds.red.data[0], ds.nir.data[0], ds.scl.data[0],
                         red_rad=red_rad, nir_rad=nir_rad, masked=masked, dtype=np.float32)


def build_composite(items: Sequence[pystac.Item], geobox: GeoBox,
                    masked_classes: Iterable[int] = DEFAULT_MASKED_CLASSES,
                    chunk: int = DEFAULT_CHUNK) -> Composite:
    """Median NDVI composite of ``items`` on ``geobox`` (see module docstring). ``items`` must be non-empty."""
    if not items:
        raise ValueError("no items to composite")
    masked = frozenset(masked_classes)
    ordered = sorted(items, key=lambda i: (acquisition_day(i), _mosaic_order(i)))
    days = sorted({acquisition_day(i) for i in ordered})
    day_index = np.array([days.index(acquisition_day(i)) for i in ordered])
    layers = []
    radio = {}
    for item in ordered:
        r = radiometry(item, "red")
        layers.append(_item_ndvi(item, geobox, masked, chunk, r, radiometry(item, "nir")))
        radio[item.id] = f"scale {r.scale}, offset {r.offset} ({r.rule})"
        log.info("scene %s (%s): reading red/nir/scl onto %dx%d grid, %s", item.id, acquisition_day(item),
                 geobox.width, geobox.height, radio[item.id])
    stack = da.stack(layers).rechunk({0: -1})

    def block(s: np.ndarray) -> np.ndarray:
        median, count = composite_pixels(s, day_index)
        return np.stack([median, count.astype(np.float32)])

    result = da.map_blocks(block, stack, dtype=np.float32, chunks=((2,), *stack.chunks[1:]))
    log.info("compositing %d items over %d days", len(ordered), len(days))
    try:
        computed = result.compute()
    except (rasterio.errors.RasterioError, OSError, RuntimeError) as exc:
        raise _name_corrupt_asset(ordered, geobox, exc) from exc
    composite = Composite(ndvi=computed[0], count=computed[1].astype(np.uint16), geobox=geobox, days=days,
                          radiometry=radio)
    log.info("composite done: %.1f%% of pixels have a clear observation", 100 * composite.valid_fraction)
    return composite


def _name_corrupt_asset(items: Sequence[pystac.Item], geobox: GeoBox, exc: Exception) -> Exception:
    """Find which asset failed (only on the error path: reads each asset header and window again)."""
    for item in items:
        for key in ("red", "nir", "scl"):
            href = item.assets[key].get_absolute_href() or item.assets[key].href
            try:
                with rasterio.open(href) as src:
                    src.read(1, out_shape=(1, min(src.height, 64), min(src.width, 64)))
                    src.read(1)
            except Exception as err:  # noqa: BLE001 - any failure names the culprit
                return CorruptImageError(f"item {item.id}: asset {key!r} at {href} cannot be read: {err}")
    return CorruptImageError(f"reading the scenes failed: {exc}")
