"""Write the composite as a Cloud-Optimised GeoTIFF block by block, publish it atomically, read previews.

Blocks go into a tiled, uncompressed GeoTIFF as they complete (memory: one block), and each block, decimated,
into one uncompressed GeoTIFF per overview level (nearest: every 2^k-th pixel, as GDAL's nearest overviews).
A VRT names those files as the overviews of the full-resolution one, and GDAL's COG driver copies it into COG
layout (streamed by GDAL, bounded by its cache), compressing the tiles on every core; it uses the overviews
as they are instead of reading the whole image back to build them. Every temporary file carries a unique
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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import rasterio
import rasterio.shutil
from odc.geo.geobox import GeoBox
from rasterio.errors import RasterioError
from rasterio.windows import Window

from ingestion.atomic import write_error

log = logging.getLogger(__name__)

NODATA = -9999.0
BAND_NAMES = ("ndvi_median", "valid_observations")
STALE_SECONDS = 24 * 3600
#: DEFLATE level 1: at 25 Mpx the file is < 1 % larger than at GDAL's default level 6 and compresses about
#: 4x faster (measured 2.8 s against 12.5 s for the COG step); a floating-point predictor made it slower.
#: The overviews come from the source (see ``overview_factors``), so GDAL never builds its own.
COG_OPTIONS = {"COMPRESS": "DEFLATE", "LEVEL": "1", "BLOCKSIZE": "256", "OVERVIEWS": "FORCE_USE_EXISTING",
               "BIGTIFF": "IF_SAFER", "NUM_THREADS": "ALL_CPUS"}
TILE = 256
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


def overview_shape(width: int, height: int, factor: int) -> tuple[int, int]:
    """(width, height) of the overview at ``factor``: rounded down, at least 1 px, as GDAL's COG driver."""
    return max(1, width // factor), max(1, height // factor)


def overview_factors(width: int, height: int, tile: int = TILE) -> list[int]:
    """Decimation factors 2, 4, ... of the overviews, halving until the image fits one ``tile`` (GDAL's rule)."""
    factors, factor = [], 1
    while max(overview_shape(width, height, factor)) > tile:
        factor *= 2
        factors.append(factor)
    return factors


def _decimated(roi: tuple[slice, slice], factor: int, shape: tuple[int, int]
               ) -> tuple[tuple[slice, slice], Window] | None:
    """Grid pixels of ``roi`` kept in the overview of ``shape`` (height, width) at ``factor``: pixel (i, j) of
    the overview is grid pixel (i * factor, j * factor), as GDAL's nearest overviews when ``factor`` divides
    the grid. Returns their slices within the block and the overview window they fill, ``None`` if none."""
    parts = []
    for axis, size in zip(roi, shape, strict=True):
        first = -(-axis.start // factor)  # first overview pixel whose grid pixel is in the block
        stop = min(size, -(-axis.stop // factor))
        if first >= stop:
            return None
        parts.append((slice(first * factor - axis.start, (stop - 1) * factor - axis.start + 1, factor), first,
                      stop - first))
    (rows, row0, n_rows), (cols, col0, n_cols) = parts
    return (rows, cols), Window(col0, row0, n_cols, n_rows)


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
        self._vrt = Path(f"{self._stem}.part.vrt")
        self._cog = Path(f"{self._stem}.cog.tif")
        self._factors = overview_factors(geobox.width, geobox.height)
        self._dst: rasterio.io.DatasetWriter | None = None
        self._overviews: list[tuple[int, rasterio.io.DatasetWriter]] = []

    def _open(self, path: Path, factor: int) -> rasterio.io.DatasetWriter:
        gbox = self.geobox
        width, height = overview_shape(gbox.width, gbox.height, factor)
        return rasterio.open(
            path, "w", driver="GTiff", dtype="float32", count=2, width=width, height=height, crs=str(gbox.crs),
            transform=gbox.transform * gbox.transform.scale(gbox.width / width, gbox.height / height),
            nodata=NODATA, tiled=True, blockxsize=TILE, blockysize=TILE, BIGTIFF="IF_SAFER", SPARSE_OK="TRUE")

    def _overview_path(self, factor: int) -> Path:
        return Path(f"{self._stem}.ov{factor}.tif")

    def __enter__(self) -> StreamedCogWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_temp_files(self.path)
        try:
            with self._naming_the_file():
                self._dst = self._open(self._part, 1)
                for factor in self._factors:
                    self._overviews.append((factor, self._open(self._overview_path(factor), factor)))
        except BaseException as err:
            self.__exit__(type(err), err, err.__traceback__)
            raise
        return self

    def write(self, roi: tuple[slice, slice], block: np.ndarray) -> None:
        """Write a (2, y, x) block at ``roi`` (row and column slices of the grid)."""
        ndvi, count = block[0], block[1]
        self.stats.add(ndvi, count)
        out = np.stack([np.where(np.isnan(ndvi), np.float32(NODATA), ndvi), count]).astype(np.float32, copy=False)
        rows, cols = roi
        with self._naming_the_file():
            self._dst.write(out, window=Window(cols.start, rows.start, cols.stop - cols.start,
                                               rows.stop - rows.start))
            for factor, dst in self._overviews:
                kept = _decimated(roi, factor, dst.shape)
                if kept is not None:
                    (in_rows, in_cols), window = kept
                    dst.write(np.ascontiguousarray(out[:, in_rows, in_cols]), window=window)

    @contextmanager
    def _naming_the_file(self) -> Iterator[None]:
        """GDAL's write errors (``RasterioIOError: Write failed`` after ``No space left on device``) and OS
        errors become :class:`~ingestion.atomic.OutputWriteError` naming the COG and its folder's free space."""
        try:
            yield
        except (RasterioError, OSError) as exc:
            raise write_error(self.path, exc) from exc

    def _write_vrt(self) -> None:
        """The full-resolution file with the overview files as its overviews, for the COG driver."""
        gbox, t = self.geobox, self.geobox.transform

        def source(path: Path) -> str:
            return f"<SourceFilename relativeToVRT=\"1\">{escape(path.name)}</SourceFilename>"

        bands = []
        for band, name in enumerate(BAND_NAMES, start=1):
            overviews = "".join(f"<Overview>{source(self._overview_path(f))}<SourceBand>{band}</SourceBand></Overview>"
                                for f in self._factors)
            bands.append(
                f'<VRTRasterBand dataType="Float32" band="{band}"><NoDataValue>{NODATA}</NoDataValue>'
                f"<Description>{name}</Description><SimpleSource>{source(self._part)}<SourceBand>{band}</SourceBand>"
                f'<SrcRect xOff="0" yOff="0" xSize="{gbox.width}" ySize="{gbox.height}"/>'
                f'<DstRect xOff="0" yOff="0" xSize="{gbox.width}" ySize="{gbox.height}"/></SimpleSource>'
                f"{overviews}</VRTRasterBand>")
        self._vrt.write_text(
            f'<VRTDataset rasterXSize="{gbox.width}" rasterYSize="{gbox.height}">'
            f"<SRS>{escape(gbox.crs.to_wkt())}</SRS>"
            f"<GeoTransform>{t.c!r}, {t.a!r}, {t.b!r}, {t.f!r}, {t.d!r}, {t.e!r}</GeoTransform>"
            f"{''.join(bands)}</VRTDataset>")

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            with self._naming_the_file():
                for dst in (self._dst, *(d for _, d in self._overviews)):
                    if dst is not None:
                        dst.close()
                if exc_type is None:
                    self._write_vrt()
                    rasterio.shutil.copy(self._vrt, self._cog, driver="COG", **COG_OPTIONS)
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
