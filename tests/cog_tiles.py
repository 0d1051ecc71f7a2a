"""Which tiles of a tiled GeoTIFF a set of HTTP range requests fetched, and the fewest any reader needs.

Used by the remote-read test (no source tile fetched twice) and by ``benchmarks/composite.py --remote`` (the
floor: requests and bytes that any reader of the AOI needs, computed from the files' tile tables).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import rasterio
import rasterio.windows
from odc.geo.geobox import GeoBox

Tile = tuple[int, int, int]  # (overview level, 0 = full resolution; tile row; tile column)


@dataclass(frozen=True)
class TileTable:
    """Byte offset and size of every tile of band 1, per overview level, and the header's size."""

    tiles: dict[Tile, tuple[int, int]]
    header_bytes: int

    @classmethod
    def read(cls, path: Path) -> TileTable:
        tiles: dict[Tile, tuple[int, int]] = {}
        with rasterio.open(path) as src:
            levels = len(src.overviews(1))
        for level in range(levels + 1):
            with rasterio.open(path, overview_level=level - 1) if level else rasterio.open(path) as src:
                bh, bw = src.block_shapes[0]
                for row in range(math.ceil(src.height / bh)):
                    for col in range(math.ceil(src.width / bw)):
                        offset = src.get_tag_item(f"BLOCK_OFFSET_{col}_{row}", "TIFF", bidx=1)
                        size = src.get_tag_item(f"BLOCK_SIZE_{col}_{row}", "TIFF", bidx=1)
                        if offset and size and int(size):
                            tiles[(level, row, col)] = (int(offset), int(size))
        first = min(offset for offset, _ in tiles.values())
        return cls(tiles, first)

    def fetched(self, ranges: Iterable[tuple[int, int]]) -> dict[Tile, float]:
        """Per tile, how many times its bytes were fetched (overlapping bytes / tile size) by ``ranges``
        (first and last byte, inclusive)."""
        out: dict[Tile, float] = {}
        spans = sorted(ranges)
        for tile, (offset, size) in self.tiles.items():
            end = offset + size - 1
            covered = sum(max(0, min(end, last) - max(offset, first) + 1) for first, last in spans
                          if first <= end and last >= offset)
            if covered:
                out[tile] = covered / size
        return out

    def needed(self, path: Path, geobox: GeoBox) -> list[Tile]:
        """Full-resolution tiles of ``path`` that ``geobox``'s extent (any CRS) touches."""
        with rasterio.open(path) as src:
            bounds = geobox.extent.to_crs(src.crs).boundingbox
            window = rasterio.windows.from_bounds(*bounds, transform=src.transform)
            bh, bw = src.block_shapes[0]
            rows = range(max(0, math.floor(window.row_off / bh)),
                         min(math.ceil(src.height / bh), math.ceil((window.row_off + window.height) / bh)))
            cols = range(max(0, math.floor(window.col_off / bw)),
                         min(math.ceil(src.width / bw), math.ceil((window.col_off + window.width) / bw)))
        return [(0, r, c) for r in rows for c in cols if (0, r, c) in self.tiles]

    def floor(self, path: Path, geobox: GeoBox) -> tuple[int, int]:
        """(requests, bytes) that any reader needs for ``geobox`` from this file: the header in one request,
        then each run of needed tiles that lie back to back in the file in one request."""
        spans = sorted(self.tiles[t] for t in self.needed(path, geobox))
        runs, last_end = 0, None
        for offset, size in spans:
            if offset != last_end:
                runs += 1
            last_end = offset + size
        return 1 + runs, self.header_bytes + sum(size for _, size in spans)
