"""Yearly NDVI median composite on an area's common grid, computed block by block and streamed to a COG.

Before any block, each item's radiometric offset is decided from a sample of its own pixels where they are
conclusive, else from its metadata (``ingestion.imagery.offset_check``). Per block of the grid (``chunk`` px
square) and per item: windowed reads of red, nir and SCL onto the block
(odc-loader's rasterio reader), radiometry and the SCL mask give an NDVI layer with NaN where the pixel is not
clear. Per acquisition day the items (partial tiles, ``_0``/``_1`` products) are mosaicked so each pixel gets
at most one observation per day: the mask is applied per item before the mosaic, unlike odc-stac's
``groupby="solar_day"``, which fuses first and lets a cloudy scene hide a clear one. The composite is the
per-pixel median over days, with the count of those observations. Blocks run on local threads or a Dask
cluster and are written to the COG as they complete, so memory depends on the chunk size, the number of items
and the workers, never on the area.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pystac
from odc.geo.geobox import GeoBox

from ingestion.imagery.blocks import (
    DEFAULT_IO_CONCURRENCY,
    BlockTask,
    CorruptImageError,
    ItemReads,
    composite_block,
    composite_pixels,
)
from ingestion.imagery.cog import CogStats, StreamedCogWriter
from ingestion.imagery.gdal_env import configure_client, gdal_options
from ingestion.imagery.masking import DEFAULT_MASKED_CLASSES
from ingestion.imagery.offset_check import OffsetDecision, asset_href, check_offsets
from ingestion.imagery.scheduler import run_blocks
from ingestion.sources.base import acquired

__all__ = ["Composite", "CompositePlan", "CompositeSummary", "CorruptImageError", "acquisition_day",
           "build_composite", "composite_pixels", "plan_composite", "stream_composite"]

log = logging.getLogger(__name__)

DEFAULT_CHUNK = 1024


@dataclass
class Composite:
    """Median NDVI (float32, NaN = no clear observation) and clear-day count (uint16) on ``geobox``, in memory
    (small areas and tests; the pipeline streams with ``stream_composite``)."""

    ndvi: np.ndarray
    count: np.ndarray
    geobox: GeoBox
    days: list[dt.date]
    offsets: dict[str, OffsetDecision]

    @property
    def valid_fraction(self) -> float:
        """Share of grid pixels with at least one clear observation (0..1)."""
        return float(np.count_nonzero(self.count) / self.count.size) if self.count.size else 0.0


@dataclass
class CompositeSummary:
    """What a streamed composite leaves besides the COG: grid, days, the offset decision per item, pixel
    statistics."""

    geobox: GeoBox
    days: list[dt.date]
    offsets: dict[str, OffsetDecision]
    stats: CogStats

    @property
    def valid_fraction(self) -> float:
        return self.stats.valid_fraction

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



@dataclass
class CompositePlan:
    """Items in mosaic order with their day numbers and radiometry, and the blocks of the grid."""

    geobox: GeoBox
    days: list[dt.date]
    items: tuple[ItemReads, ...]
    offsets: dict[str, OffsetDecision]
    masked: tuple[int, ...]
    chunk: int
    gdal_options: dict[str, str | int]
    io_concurrency: int = DEFAULT_IO_CONCURRENCY

    def tasks(self) -> Iterator[BlockTask]:
        """One task per ``chunk`` x ``chunk`` block, row by row."""
        height, width = self.geobox.shape
        for row in range(0, height, self.chunk):
            for col in range(0, width, self.chunk):
                roi = (slice(row, min(row + self.chunk, height)), slice(col, min(col + self.chunk, width)))
                yield BlockTask(roi, self.geobox[roi], self.items, len(self.days), self.masked, self.gdal_options,
                                self.io_concurrency)


def plan_composite(items: Sequence[pystac.Item], geobox: GeoBox,
                   masked_classes: Iterable[int] = DEFAULT_MASKED_CLASSES, chunk: int = DEFAULT_CHUNK,
                   gdal: Mapping[str, object] | None = None,
                   offsets: Mapping[str, OffsetDecision] | None = None,
                   io_concurrency: int = DEFAULT_IO_CONCURRENCY) -> CompositePlan:
    """Order ``items`` (non-empty) by day and preference, number the days, resolve hrefs and radiometry.

    ``offsets``: each item's offset decision (``ingestion.imagery.offset_check``), as the pipeline made them
    while screening the items; when ``None`` the check runs here, and an unreadable asset raises
    ``UnreadableAssetError``. ``io_concurrency``: reads in flight per process (the check's and the blocks').
    """
    if not items:
        raise ValueError("no items to composite")
    if chunk < 256 or chunk % 256:
        raise ValueError(f"chunk must be a positive multiple of 256 px (the COG tile), got {chunk}")
    masked = tuple(sorted(frozenset(masked_classes)))
    options = gdal_options(gdal)
    if offsets is None:
        check = check_offsets(items, geobox, masked, options, threads=io_concurrency)
        if check.unreadable:
            raise next(iter(check.unreadable.values()))
        offsets = check.decisions
    ordered = sorted(items, key=lambda i: (acquisition_day(i), _mosaic_order(i)))
    days = sorted({acquisition_day(i) for i in ordered})
    reads, decisions = [], {}
    for item in ordered:
        decision = offsets[item.id]
        reads.append(ItemReads(item.id, days.index(acquisition_day(item)),
                               tuple(asset_href(item, k) for k in ("red", "nir", "scl")), decision.red, decision.nir))
        decisions[item.id] = decision
        log.info("scene %s (%s): %s", item.id, acquisition_day(item), decision.applied_text)
    return CompositePlan(geobox, days, tuple(reads), decisions, masked, chunk, options, io_concurrency)


def stream_composite(items: Sequence[pystac.Item], geobox: GeoBox, path: Path,
                     masked_classes: Iterable[int] = DEFAULT_MASKED_CLASSES, chunk: int = DEFAULT_CHUNK,
                     scheduler: str | None = None, gdal: Mapping[str, object] | None = None,
                     threads: int | None = None, offsets: Mapping[str, OffsetDecision] | None = None,
                     io_concurrency: int = DEFAULT_IO_CONCURRENCY) -> CompositeSummary:
    """Composite ``items`` on ``geobox`` block by block and write the 2-band COG at ``path`` as blocks finish.

    ``scheduler``: a Dask scheduler address (``tcp://host:8786``) or ``None`` for local threads. ``gdal``:
    GDAL option overrides for the reads (see ``ingestion.imagery.gdal_env``). ``threads``: blocks computed at
    once (default: the cores). ``offsets``, ``io_concurrency``: see :func:`plan_composite`.
    """
    plan = plan_composite(items, geobox, masked_classes, chunk, gdal, offsets, io_concurrency)
    configure_client(plan.gdal_options)
    log.info("compositing %d items over %d days on a %dx%d grid in %d px blocks%s", len(plan.items),
             len(plan.days), geobox.width, geobox.height, chunk, f" on {scheduler}" if scheduler else "")
    with StreamedCogWriter(path, geobox) as writer:
        for task, block in run_blocks(composite_block, plan.tasks(), scheduler, threads):
            writer.write(task.roi, block)
    log.info("composite done: %.1f%% of pixels have a clear observation", 100 * writer.stats.valid_fraction)
    return CompositeSummary(geobox, plan.days, plan.offsets, writer.stats)


def build_composite(items: Sequence[pystac.Item], geobox: GeoBox,
                    masked_classes: Iterable[int] = DEFAULT_MASKED_CLASSES, chunk: int = DEFAULT_CHUNK,
                    scheduler: str | None = None, gdal: Mapping[str, object] | None = None,
                    offsets: Mapping[str, OffsetDecision] | None = None,
                    io_concurrency: int = DEFAULT_IO_CONCURRENCY) -> Composite:
    """The same composite held in memory (for small areas and tests): same blocks, same pixels."""
    plan = plan_composite(items, geobox, masked_classes, chunk, gdal, offsets, io_concurrency)
    ndvi = np.full(geobox.shape, np.nan, dtype=np.float32)
    count = np.zeros(geobox.shape, dtype=np.uint16)
    for task, block in run_blocks(composite_block, plan.tasks(), scheduler):
        ndvi[task.roi] = block[0]
        count[task.roi] = block[1].astype(np.uint16)
    return Composite(ndvi=ndvi, count=count, geobox=geobox, days=plan.days, offsets=plan.offsets)
