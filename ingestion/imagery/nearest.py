"""Nearest-neighbour reads onto a block of another grid (another CRS, rotated or shifted) without GDAL's warper.

Where a COG's grid is not the block's grid (Earth Search's UTM tiles under an RD New block), each block pixel
takes the value of the source pixel under its centre. GDAL's warper does that at about 55 ns per pixel for every
read; most of that is the per-pixel coordinate transform and the warp kernel, repeated for every item and band
although they all share a few grids. Here the mapping is computed once per (block, source grid) and then every
read is a windowed read (the tiles are decoded as usual) and one gather: about a quarter of the CPU (measured in
``benchmarks/composite.py --remote``).

The mapping: block pixel centres are transformed exactly (pyproj) at nodes every :data:`NODE_STEP` pixels and
interpolated bilinearly between them (a product of two interpolation matrices), which is GDAL's own approach
(its approximate transformer) with a far smaller error: the interpolation error is checked at the midpoints of
the node cells and must stay below :data:`MAX_ERROR_PX` source pixels, else :func:`pixel_map` returns None and
the caller warps with GDAL. A pixel centre within that error of a source pixel edge may go to either side; GDAL
allows 0.125 px there.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import rasterio
import rasterio.windows
from affine import Affine
from odc.geo.geobox import GeoBox
from pyproj import Transformer

#: Distance between exactly transformed nodes, block pixels.
NODE_STEP = 32
#: Largest interpolation error accepted, in source pixels (checked at the node cells' midpoints).
MAX_ERROR_PX = 1e-3
#: Pixel maps kept per process (each about 4 bytes per block pixel): the blocks in flight and their few grids.
CACHED_MAPS = 8


@dataclass(frozen=True)
class PixelMap:
    """Where each block pixel's centre falls in one source grid: ``window`` of the source to read, and
    ``index`` (int32, block shape) into that window's flattened pixels, -1 outside the source."""

    window: rasterio.windows.Window | None
    index: np.ndarray

    def gather(self, src: rasterio.DatasetReader, dtype: str) -> np.ndarray:
        """Band 1 of ``src`` on the block: a windowed read, then one gather; 0 outside the source and where
        the source is nodata (Sentinel-2's nodata is 0)."""
        if self.window is None:
            return np.zeros(self.index.shape, dtype=dtype)
        data = src.read(1, window=self.window).astype(dtype, copy=False)
        flat = np.zeros(data.size + 1, dtype=dtype)  # the last element is the 0 that index -1 picks
        flat[:-1] = data.ravel()
        out = flat[self.index]
        if src.nodata is not None and src.nodata != 0:
            out[out == src.nodata] = 0
        return out


def _interpolation_matrix(positions: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """(len(positions), len(nodes)) weights that interpolate node values linearly at ``positions``: node values
    ``v`` (rows x cols) become ``W_rows @ v @ W_cols.T`` at every (row, col) position, i.e. bilinearly."""
    return np.stack([np.interp(positions, nodes, np.eye(len(nodes))[k]) for k in range(len(nodes))], axis=1)


def _nodes(size: int) -> np.ndarray:
    """Node positions (pixel-centre coordinates) every NODE_STEP pixels, first and last centre included."""
    return np.unique(np.append(np.arange(0, size, NODE_STEP), size - 1)) + 0.5


def _source_pixels(geobox: GeoBox, transformer: Transformer, inverse: Affine, cols: np.ndarray,
                   rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Source (column, row) coordinates, fractional, of block positions ``cols`` x ``rows`` (a grid)."""
    jj, ii = np.meshgrid(cols, rows)
    x, y = geobox.transform * (jj, ii)
    sx, sy = transformer.transform(x, y)
    return inverse * (np.asarray(sx), np.asarray(sy))


_transformers: dict[tuple[str, str], Transformer] = {}
_maps: OrderedDict[tuple, PixelMap | None] = OrderedDict()
_key_locks: dict[tuple, threading.Lock] = {}
_lock = threading.Lock()


def _transformer(dst: str, src: str) -> Transformer:
    with _lock:
        if (dst, src) not in _transformers:
            _transformers[(dst, src)] = Transformer.from_crs(dst, src, always_xy=True)
        return _transformers[(dst, src)]


def pixel_map(geobox: GeoBox, src: rasterio.DatasetReader) -> PixelMap | None:
    """The block ``geobox``'s pixel map into ``src``'s grid (cached per process), or None when the mapping is
    not smooth enough to interpolate (then warp with GDAL)."""
    key = (str(geobox.crs), tuple(geobox.transform), tuple(geobox.shape), src.crs.to_string(), tuple(src.transform),
           src.shape)
    with _lock:
        key_lock = _key_locks.setdefault(key, threading.Lock())
    with key_lock:  # the items of a block are read at once: one computes the map, the others wait for it
        with _lock:
            if key in _maps:
                _maps.move_to_end(key)
                return _maps[key]
        found = _compute(geobox, src)
        with _lock:
            _maps[key] = found
            while len(_maps) > CACHED_MAPS:
                _key_locks.pop(_maps.popitem(last=False)[0], None)
        return found


def _compute(geobox: GeoBox, src: rasterio.DatasetReader) -> PixelMap | None:
    height, width = geobox.shape
    transformer = _transformer(geobox.crs.to_wkt(), src.crs.to_wkt())
    inverse = ~src.transform
    col_nodes, row_nodes = _nodes(width), _nodes(height)
    node_cols, node_rows = _source_pixels(geobox, transformer, inverse, col_nodes, row_nodes)
    if not (np.isfinite(node_cols).all() and np.isfinite(node_rows).all()):
        return None
    if len(col_nodes) > 1 and len(row_nodes) > 1:  # the interpolation error, where it is largest
        mid_cols, mid_rows = (col_nodes[:-1] + col_nodes[1:]) / 2, (row_nodes[:-1] + row_nodes[1:]) / 2
        exact_cols, exact_rows = _source_pixels(geobox, transformer, inverse, mid_cols, mid_rows)
        wc, wr = _interpolation_matrix(mid_cols, col_nodes), _interpolation_matrix(mid_rows, row_nodes)
        error = max(np.abs(wr @ node_cols @ wc.T - exact_cols).max(), np.abs(wr @ node_rows @ wc.T - exact_rows).max())
        if error > MAX_ERROR_PX:
            return None
    wc = _interpolation_matrix(np.arange(width) + 0.5, col_nodes)
    wr = _interpolation_matrix(np.arange(height) + 0.5, row_nodes)
    cols = np.floor(wr @ node_cols @ wc.T).astype(np.int64)
    rows = np.floor(wr @ node_rows @ wc.T).astype(np.int64)
    inside = (cols >= 0) & (cols < src.width) & (rows >= 0) & (rows < src.height)
    if not inside.any():
        return PixelMap(None, np.full(geobox.shape, -1, dtype=np.int32))
    c0, c1 = cols[inside].min(), cols[inside].max() + 1
    r0, r1 = rows[inside].min(), rows[inside].max() + 1
    index = np.where(inside, (rows - r0) * (c1 - c0) + (cols - c0), -1).astype(np.int32)
    return PixelMap(rasterio.windows.Window(int(c0), int(r0), int(c1 - c0), int(r1 - r0)), index)

