"""One block of the composite: read every item's red, nir and SCL window, mask, one value per day, median.

A ``BlockTask`` is plain data (hrefs, radiometry, the block's grid, GDAL options) so it pickles to a Dask
worker; ``composite_block`` is a module-level function for the same reason. Reads go through odc-loader's
rasterio reader (a straight windowed read when the asset's grid lines up with the block, a nearest-neighbour
warp otherwise, e.g. the 20 m SCL onto the 10 m grid).
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import rasterio
import rasterio.windows
from odc.geo.geobox import GeoBox
from odc.loader import RasterLoadParams, RasterSource, RioReader

from ingestion.imagery.datasets import file_lock, opened
from ingestion.imagery.nearest import pixel_map
from ingestion.imagery.radiometry import Radiometry, ndvi, reflectance

DTYPES = {"red": "uint16", "nir": "uint16", "scl": "uint8"}
#: Reads in flight per process by default (``compute.io_concurrency``): over HTTPS a read waits 100-200 ms for
#: each round trip, so many overlap; locally they cost a thread each and nothing else.
DEFAULT_IO_CONCURRENCY = 16


class CorruptImageError(RuntimeError):
    """An asset could not be read; the message names the item and the href."""


@dataclass(frozen=True)
class ItemReads:
    """What a block needs from one item: its day number (0-based, in the composite's day list), the hrefs
    of ``red``, ``nir`` and ``scl`` (local paths or URLs), and the radiometry of red and nir."""

    item_id: str
    day: int
    hrefs: tuple[str, str, str]
    red: Radiometry
    nir: Radiometry


@dataclass(frozen=True)
class BlockTask:
    """One block: ``roi`` (row and column slices, pixels) of the area grid, the block's own ``geobox`` (same
    CRS, metres), the items in mosaic order (by day, preferred product first), masked SCL classes, GDAL
    options, and the reads in flight per process (``io_concurrency``)."""

    roi: tuple[slice, slice]
    geobox: GeoBox
    items: tuple[ItemReads, ...]
    n_days: int
    masked: tuple[int, ...]
    gdal_options: dict[str, str | int]
    io_concurrency: int = DEFAULT_IO_CONCURRENCY


def read_asset(href: str, geobox: GeoBox, dtype: str, item_id: str = "", key: str = "",
               options: dict[str, str | int] | None = None) -> np.ndarray:
    """``href`` resampled (nearest) onto ``geobox``; 0 (Sentinel-2 nodata) where the asset has no pixel.

    When the asset's grid is the block's grid or an integer multiple of it, aligned (the 20 m SCL on the 10 m
    grid), the window is read at the asset's resolution and repeated, which equals a nearest-neighbour warp
    and costs a fraction of it. On another grid (another CRS, rotated or shifted) the block's pixel map into the
    asset's grid (:mod:`ingestion.imagery.nearest`, shared by every item on that grid) picks each pixel from a
    windowed read; only where no such map can be made does odc-loader's reader warp with GDAL.

    ``options``: the GDAL options the caller's ``rasterio.Env`` set (a file kept open in a batch,
    :mod:`ingestion.imagery.datasets`, is reused only with the same ones).
    """
    try:
        with opened(href, options) as src:
            factor = _integer_factor(src, geobox)
            if factor:
                return _read_repeated(src, geobox, factor, dtype)
            mapping = pixel_map(geobox, src) if src.crs is not None else None
            if mapping is not None:
                return mapping.gather(src, dtype)
        out = np.zeros(geobox.shape, dtype=dtype)
        cfg = RasterLoadParams(dtype=dtype, fill_value=0, src_nodata_fallback=0, resampling="nearest")
        roi, pix = RioReader(RasterSource(href), None).read(cfg, geobox)
        out[roi] = pix
        return out
    except Exception as err:  # noqa: BLE001 - any read failure names the culprit
        raise CorruptImageError(f"item {item_id}: asset {key!r} at {href} cannot be read: {err}") from None


def _integer_factor(src: rasterio.DatasetReader, geobox: GeoBox) -> int | None:
    """k when ``src`` has the CRS of ``geobox``, k times its pixel size, north-up, and pixel edges on its grid."""
    st, gt = src.transform, geobox.transform
    if src.crs is None or not src.crs == geobox.crs or st.b or st.d or gt.b or gt.d or gt.e != -gt.a:
        return None
    k = st.a / gt.a
    if k < 1 or abs(k - round(k)) > 1e-9 or abs(st.e + st.a) > 1e-9 * st.a:
        return None
    dx, dy = (gt.c - st.c) / gt.a, (st.f - gt.f) / gt.a
    if abs(dx - round(dx)) > 1e-6 or abs(dy - round(dy)) > 1e-6:
        return None
    return round(k)


def _read_repeated(src: rasterio.DatasetReader, geobox: GeoBox, k: int, dtype: str) -> np.ndarray:
    """Block pixels (row i, col j) = source pixel ((row0 + i) // k, (col0 + j) // k); 0 outside the source."""
    st, gt = src.transform, geobox.transform
    row0, col0 = round((st.f - gt.f) / gt.a), round((gt.c - st.c) / gt.a)  # block origin, in block pixels
    height, width = geobox.shape
    r_lo, r_hi = max(row0, 0), min(row0 + height, src.height * k)
    c_lo, c_hi = max(col0, 0), min(col0 + width, src.width * k)
    out = np.zeros((height, width), dtype=dtype)
    if r_lo >= r_hi or c_lo >= c_hi:
        return out
    sr, sc = r_lo // k, c_lo // k
    window = rasterio.windows.Window(sc, sr, (c_hi - 1) // k - sc + 1, (r_hi - 1) // k - sr + 1)
    data = src.read(1, window=window).astype(dtype, copy=False)
    if k > 1:
        data = np.repeat(np.repeat(data, k, axis=0), k, axis=1)
    data = data[r_lo - sr * k: r_hi - sr * k, c_lo - sc * k: c_hi - sc * k]
    out[r_lo - row0: r_hi - row0, c_lo - col0: c_hi - col0] = data
    if src.nodata is not None and src.nodata != 0:
        out[out == src.nodata] = 0
    return out


def composite_pixels(stack: np.ndarray, day_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median and observation count over days of an (items, y, x) NDVI stack (NaN = not clear).

    ``day_index[i]`` is the day number of item ``i``; items of one day must be ordered by preference.
    Each day contributes the first clear value of its items, so duplicates never count twice.
    """
    days = np.unique(day_index)
    per_day = np.full((len(days), *stack.shape[1:]), np.nan, dtype=np.float32)
    for d_pos, day in enumerate(days):
        for layer in stack[day_index == day]:
            _fill_gaps(per_day[d_pos], layer)
    return median_over_days(per_day)


def _fill_gaps(day: np.ndarray, layer: np.ndarray) -> None:
    """Where ``day`` has no value yet, take ``layer``'s (NaN stays NaN)."""
    np.copyto(day, layer, where=np.isnan(day))


#: Up to this many days the per-pixel sort is a sorting network of whole-layer min/max (about 1.5x faster than
#: ``np.sort`` along the short, strided days axis at 5 days); beyond, ``np.sort``.
NETWORK_DAYS = 8


def median_over_days(per_day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel median (float32, NaN where no day) and count (uint16) over axis 0 of a (days, y, x) stack.

    Vectorised: NaN sorts last, so the middle of the first ``count`` values is the median; for an even
    count the mean of the two middle values, as ``numpy.nanmedian``.
    """
    count = np.count_nonzero(~np.isnan(per_day), axis=0)
    if per_day.shape[0] == 1:
        return per_day[0].copy(), count.astype(np.uint16)
    if per_day.shape[0] <= NETWORK_DAYS:
        ordered = _sorted_days(per_day)
    else:
        ordered = np.sort(per_day, axis=0)
    low = np.take_along_axis(ordered, (np.maximum(count - 1, 0) // 2)[None], axis=0)[0]
    high = np.take_along_axis(ordered, (count // 2)[None], axis=0)[0]
    median = (low + high) / np.float32(2)
    median[count == 0] = np.nan  # all-NaN pixels (count 0) stay NaN
    return median, count.astype(np.uint16)


def _sorted_days(per_day: np.ndarray) -> np.ndarray:
    """``per_day`` sorted along axis 0 with NaN as +inf (odd-even transposition network). NDVI values are
    finite, so an inf is never a value and never among the first ``count`` entries."""
    ordered = np.where(np.isnan(per_day), np.float32(np.inf), per_day)
    n = ordered.shape[0]
    for rnd in range(n):
        for i in range(rnd % 2, n - 1, 2):
            low = np.minimum(ordered[i], ordered[i + 1])
            np.maximum(ordered[i], ordered[i + 1], out=ordered[i + 1])
            ordered[i] = low
    return ordered


def _clear_lut(masked: tuple[int, ...]) -> np.ndarray:
    """Lookup table over the 256 SCL values: True where the class is not masked (as ``clear_mask``)."""
    lut = np.ones(256, dtype=bool)
    lut[[c for c in masked if 0 <= c < 256]] = False
    return lut


def composite_block(task: BlockTask) -> np.ndarray:
    """(2, y, x) float32 block: band 0 median NDVI (NaN = no clear day), band 1 clear-day count.

    Reads go to the process's reader pool (:func:`io_pool`, ``task.io_concurrency`` threads), so a block's items
    and bands are fetched concurrently: over a network each read waits a round trip or more, and these waits
    overlap instead of adding up. SCL comes first, for every item at once; ``red`` and ``nir`` are then read
    only for the items that can fill a gap of their day (not the second product of a ``_0``/``_1`` pair, not a
    fully cloudy item), and the day layers are filled in mosaic order exactly as one item after another would.
    """
    per_day = np.full((task.n_days, *task.geobox.shape), np.nan, dtype=np.float32)
    lut = _clear_lut(task.masked)
    pool = io_pool(task.io_concurrency)

    def read(index: int, band: int) -> Future[np.ndarray]:
        item = task.items[index]
        key = ("red", "nir", "scl")[band]
        return pool.submit(_read_in_env, task.gdal_options, item.hrefs[band], task.geobox, DTYPES[key],
                           item.item_id, key)

    clear = [lut[f.result()] for f in [read(i, 2) for i in range(len(task.items))]]
    # What each item can add, judged from SCL alone: its clear pixels that no earlier item of its day covers.
    # Exact for the fill below unless an earlier item had a clear pixel with no NDVI (DN 0); such an item is
    # then read when the fill needs it.
    covered: dict[int, np.ndarray] = {}
    reads: dict[int, tuple[Future[np.ndarray], Future[np.ndarray]]] = {}
    for i, item in enumerate(task.items):
        seen = covered.setdefault(item.day, np.zeros(task.geobox.shape, dtype=bool))
        if (clear[i] & ~seen).any():
            reads[i] = (read(i, 0), read(i, 1))
        seen |= clear[i]
    for i, item in enumerate(task.items):
        day = per_day[item.day]
        fill = clear[i] & np.isnan(day)
        if not fill.any():
            continue
        red_future, nir_future = reads.get(i) or (read(i, 0), read(i, 1))
        red, nir = red_future.result(), nir_future.result()
        np.copyto(day, ndvi(reflectance(red, item.red), reflectance(nir, item.nir)), where=fill)
    median, count = median_over_days(per_day)
    return np.stack([median, count.astype(np.float32)])


def _read_in_env(options: dict[str, str | int], href: str, geobox: GeoBox, dtype: str, item_id: str,
                 key: str) -> np.ndarray:
    """:func:`read_asset` with the composite's GDAL options (rasterio's environment is per thread), one read of
    a file at a time in this process: two blocks that need the same source tile at once would both miss GDAL's
    cache and fetch it twice; in turn, the second finds it in ``CPL_VSIL_CURL_CACHE_SIZE``."""
    with file_lock(href), rasterio.Env(**options):
        return read_asset(href, geobox, dtype, item_id, key, options)


_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def io_pool(threads: int) -> ThreadPoolExecutor:
    """This process's pool of ``threads`` reader threads, shared by every block and composite (on a Dask worker:
    that worker's), so reads in flight are bounded by the I/O concurrency, not by the compute threads."""
    with _pools_lock:
        pool = _pools.get(threads)
        if pool is None:
            pool = _pools[threads] = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="cog-read")
        return pool
