"""Write the composite as a Cloud-Optimised GeoTIFF block by block, publish it atomically, read previews.

Blocks go into a tiled GeoTIFF as they complete (memory: one block); GDAL's COG driver then copies it into
COG layout with overviews (streamed by GDAL, bounded by its cache). Every temporary file carries a unique
``.tmp-{host}-{pid}-{token}`` suffix in the target folder, so concurrent runs of one year never share a file;
the finished COG replaces the target with one atomic rename (last writer wins, never a mixed file). A failed
write removes its temporary files; leftovers of dead processes on this host, or older than a day, are
removed by the next write to the same folder.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from odc.geo.geobox import GeoBox
from rasterio.windows import Window

log = logging.getLogger(__name__)

NODATA = -9999.0
BAND_NAMES = ("ndvi_median", "valid_observations")
STALE_SECONDS = 24 * 3600
#: DEFLATE level 1: at 25 Mpx the file is < 1 % larger than at GDAL's default level 6 and compresses about
#: 4x faster (measured 2.8 s against 12.5 s for the COG step); a floating-point predictor made it slower.
COG_OPTIONS = {"COMPRESS": "DEFLATE", "LEVEL": "1", "BLOCKSIZE": "256", "OVERVIEW_RESAMPLING": "NEAREST",
               "BIGTIFF": "IF_SAFER", "NUM_THREADS": "ALL_CPUS"}
_HOST = re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname()) or "host"


@dataclass
class CogStats:
    """Summary of the written composite: pixel counts, NDVI sum/min/max over pixels with a clear day."""

    total_pixels: int = 0
    valid_pixels: int = 0
    ndvi_sum: float = 0.0
    ndvi_min: float = float("inf")
    ndvi_max: float = float("-inf")
    nonfinite: int = 0

    def add(self, ndvi: np.ndarray, count: np.ndarray) -> None:
        valid = count > 0
        values = ndvi[valid]
        self.total_pixels += ndvi.size
        self.valid_pixels += int(values.size)
        self.nonfinite += int(np.count_nonzero(~np.isfinite(values)))
        finite = values[np.isfinite(values)]
        if finite.size:
            self.ndvi_sum += float(finite.sum(dtype=np.float64))
            self.ndvi_min = min(self.ndvi_min, float(finite.min()))
            self.ndvi_max = max(self.ndvi_max, float(finite.max()))

    @property
    def valid_fraction(self) -> float:
        """Share of grid pixels with at least one clear observation (0..1)."""
        return self.valid_pixels / self.total_pixels if self.total_pixels else 0.0

    @property
    def ndvi_mean(self) -> float | None:
        finite = self.valid_pixels - self.nonfinite
        return self.ndvi_sum / finite if finite else None

    @property
    def in_range(self) -> bool:
        """Every stored value with a clear day is a finite NDVI in [-1, 1]."""
        return self.nonfinite == 0 and (self.valid_pixels == 0 or (self.ndvi_min >= -1 and self.ndvi_max <= 1))


def temp_prefix(path: Path) -> str:
    """A unique temporary name stem for ``path`` in its own folder."""
    return f"{path.name}.tmp-{_HOST}-{os.getpid()}-{secrets.token_hex(4)}"


_TEMP = re.compile(r"\.tmp-(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)-[0-9a-f]+\.")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temp_files(path: Path, max_age: float = STALE_SECONDS) -> list[Path]:
    """Remove temporary files of ``path`` left by dead processes on this host, or older than ``max_age`` s."""
    removed = []
    if not path.parent.is_dir():
        return removed
    now = time.time()
    for candidate in path.parent.glob(f"{path.name}.tmp-*"):
        match = _TEMP.match(candidate.name[len(path.name):])
        if not match:
            continue
        try:
            old = now - candidate.stat().st_mtime > max_age
            dead = match["host"] == _HOST and int(match["pid"]) != os.getpid() and not _process_alive(
                int(match["pid"]))
            if old or dead:
                candidate.unlink()
                removed.append(candidate)
        except FileNotFoundError:
            continue
    if removed:
        log.info("removed %d leftover temporary file(s) of %s", len(removed), path)
    return removed


class StreamedCogWriter:
    """Context manager: ``write(roi, block)`` (2, y, x) float32 blocks in any order, publish on clean exit.

    Band 1 median NDVI (NaN becomes nodata -9999), band 2 clear-observation count; float32, tiled 256 px,
    DEFLATE, overviews (nearest), band descriptions, CRS and transform of ``geobox`` (metres).
    """

    def __init__(self, path: Path, geobox: GeoBox) -> None:
        self.path = Path(path)
        self.geobox = geobox
        self.stats = CogStats()
        self._stem = self.path.parent / temp_prefix(self.path)
        self._part = Path(f"{self._stem}.part.tif")
        self._cog = Path(f"{self._stem}.cog.tif")
        self._dst: rasterio.io.DatasetWriter | None = None

    def __enter__(self) -> StreamedCogWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_temp_files(self.path)
        gbox = self.geobox
        self._dst = rasterio.open(
            self._part, "w", driver="GTiff", dtype="float32", count=2, width=gbox.width, height=gbox.height,
            crs=str(gbox.crs), transform=gbox.transform, nodata=NODATA, tiled=True, blockxsize=256,
            blockysize=256, BIGTIFF="IF_SAFER", SPARSE_OK="TRUE")
        return self

    def write(self, roi: tuple[slice, slice], block: np.ndarray) -> None:
        """Write a (2, y, x) block at ``roi`` (row and column slices of the grid)."""
        ndvi, count = block[0], block[1]
        self.stats.add(ndvi, count)
        out = np.stack([np.where(np.isnan(ndvi), np.float32(NODATA), ndvi), count]).astype(np.float32, copy=False)
        rows, cols = roi
        self._dst.write(out, window=Window(cols.start, rows.start, cols.stop - cols.start, rows.stop - rows.start))

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if self._dst is not None:
                for i, name in enumerate(BAND_NAMES, start=1):
                    self._dst.set_band_description(i, name)
                self._dst.close()
            if exc_type is None:
                rasterio.shutil.copy(self._part, self._cog, driver="COG", **COG_OPTIONS)
                os.replace(self._cog, self.path)
        finally:
            for leftover in self.path.parent.glob(f"{self._stem.name}.*"):
                leftover.unlink(missing_ok=True)


def write_array_cog(ndvi: np.ndarray, count: np.ndarray, geobox: GeoBox, path: Path, rows: int = 1024) -> CogStats:
    """Write in-memory NDVI (float32, NaN = none) and count arrays through ``StreamedCogWriter``."""
    with StreamedCogWriter(path, geobox) as writer:
        for start in range(0, geobox.height, rows):
            roi = (slice(start, min(start + rows, geobox.height)), slice(0, geobox.width))
            writer.write(roi, np.stack([ndvi[roi].astype(np.float32), count[roi].astype(np.float32)]))
    return writer.stats


def write_composite_cog(composite, path: Path) -> Path:
    """Write an in-memory ``Composite`` (small areas, tests) as the 2-band COG; returns ``path``."""
    write_array_cog(composite.ndvi, composite.count, composite.geobox, Path(path))
    return Path(path)


def read_preview(path: Path, max_pixels: int = 800) -> np.ndarray:
    """Band 1 of the COG decimated so the longer side is at most ``max_pixels`` (read from the overviews),
    NaN where nodata."""
    with rasterio.open(path) as src:
        step = max(1, int(np.ceil(max(src.width, src.height) / max_pixels)))
        shape = (max(1, src.height // step), max(1, src.width // step))
        data = src.read(1, out_shape=shape, resampling=rasterio.enums.Resampling.nearest)
    return np.where(data == NODATA, np.float32(np.nan), data).astype(np.float32)
