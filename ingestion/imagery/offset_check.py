"""Each item's radiometric offset, decided by its own pixels where they are conclusive, else by its metadata.

Why: from processing baseline 04.00 the L2A DN carry BOA_ADD_OFFSET (+1000 DN). Earth Search v1 removes it from
most COGs and says so with ``earthsearch:boa_offset_applied``, but that flag is wrong on real items, both ways:
flagged ``false`` while the DN are already clean (Element84/earth-search #66 for 2022 data, #71 for 2025 data;
cirrus-geo/cirrus-earth-search #33, "a lot of mistagged images"), and the opposite cannot be ruled out. A wrong
offset moves NDVI by up to 0.6, so the metadata (``ingestion.imagery.radiometry``) is only the prior.

The statistic (``dark_share``): among the item's clear **vegetation** pixels (SCL class 4) in a sample of the
AOI, the share whose red band, read as DN × scale with no offset, is below 0.1 (1000 DN, the size of the
offset).

- Vegetation absorbs red light: its red reflectance is 0.02-0.08, rarely up to 0.1. Where the offset was
  removed, nearly every vegetation pixel reads below 0.1: the share is near 1.
- Where the DN still carry +1000, a vegetation pixel reads 0.1 + its reflectance, below 0.1 only for a negative
  reflectance (sensor noise): the share is near 0.
- SCL was computed by Sen2Cor on the original product, so it finds the vegetation whatever offset the COG's DN
  carry.

Decision: a share of at least ``REMOVED_MIN_SHARE`` (0.8) means the offset was removed (offset 0); at most
``IN_DN_MAX_SHARE`` (0.2) means it is in the DN (offset −1000 DN × scale, −0.1); anything between, or fewer than
``MIN_VEGETATION_PIXELS`` clear vegetation pixels in the sample (a desert, snow, a cloudy or tiny AOI), is
inconclusive and the metadata rule stands. Without vegetation the red band cannot tell a bright clean scene
from a dark one with the offset: the real desert scene in the project's reference data has no red DN below
1000 at all, offset or not, so no rule on red alone could decide it.

The sample is the red band and SCL over the AOI's bounding box, read through the COG overviews at about
``SAMPLE_SIDE`` px on the longer side (a few tiles per file, concurrently across items), so the check costs a
small fraction of the composite. The same reads open ``nir``, so an asset that cannot be read (HTTP 404, a
corrupt file) is found here, before any block is computed.
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pystac
import rasterio
import rasterio.errors
import rasterio.windows
from odc.geo.geobox import GeoBox
from rasterio.enums import Resampling

from ingestion.imagery.blocks import CorruptImageError, io_pool
from ingestion.imagery.datasets import opened
from ingestion.imagery.gdal_env import gdal_options as default_gdal_options
from ingestion.imagery.radiometry import Radiometry, radiometry

log = logging.getLogger(__name__)

#: BOA_ADD_OFFSET of processing baselines >= 04.00, in DN.
OFFSET_DN = 1000
#: SCL class "vegetation".
SCL_VEGETATION = 4
#: Fewer clear vegetation pixels than this in the sample: inconclusive.
MIN_VEGETATION_PIXELS = 100
#: A vegetation pixel is dark when its red, read as DN × scale with no offset, is below this (= OFFSET_DN × 1e-4).
DARK_BELOW = 0.1
#: ``dark_share`` at or above this: the offset was removed.
REMOVED_MIN_SHARE = 0.8
#: ``dark_share`` at or below this: the offset is still in the DN.
IN_DN_MAX_SHARE = 0.2
#: Longer side of the sample, in pixels (read from the COG overview closest to it).
SAMPLE_SIDE = 256
#: The sample's pixels are never finer than this, in metres: SCL's own resolution (a finer sample of red only
#: repeats each SCL pixel, and a small area would decode full-resolution tiles: 96 areas of 3 km spent 20 s of
#: CPU on their samples against 0.3 s for the one area of the same extent).
SAMPLE_MIN_PIXEL_M = 20.0
#: Items checked at once (network requests in flight: about three files per item).
CHECK_THREADS = 8


#: What a failed open or read raises (a 404, a cut body, a corrupt file); anything else is a bug and propagates.
READ_ERRORS = (rasterio.errors.RasterioError, OSError)


class OffsetVerdict(enum.Enum):
    """What the pixels say about the offset."""

    REMOVED = "offset removed"
    IN_DN = "offset in DN"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class OffsetEvidence:
    """The sample's clear vegetation pixel count and the share of them reading below 0.1 (None without any)."""

    vegetation_pixels: int
    dark_share: float | None

    @property
    def verdict(self) -> OffsetVerdict:
        """The decision rule of this module's docstring."""
        if self.dark_share is None or self.vegetation_pixels < MIN_VEGETATION_PIXELS:
            return OffsetVerdict.INCONCLUSIVE
        if self.dark_share >= REMOVED_MIN_SHARE:
            return OffsetVerdict.REMOVED
        if self.dark_share <= IN_DN_MAX_SHARE:
            return OffsetVerdict.IN_DN
        return OffsetVerdict.INCONCLUSIVE

    def describe(self) -> str:
        """E.g. ``share 0.00 of 1,234 vegetation px below 0.1: offset in DN``."""
        if self.dark_share is None:
            return f"inconclusive: {self.vegetation_pixels:,} clear vegetation px (metadata rule kept)"
        text = f"share {self.dark_share:.2f} of {self.vegetation_pixels:,} vegetation px below 0.1"
        verdict = self.verdict
        return f"{text}: {verdict.value}" + (" (metadata rule kept)" if verdict is OffsetVerdict.INCONCLUSIVE else "")


@dataclass(frozen=True)
class OffsetDecision:
    """Per item: what the metadata claims (``prior``), what the pixels say, and the radiometry applied."""

    item_id: str
    prior: Radiometry
    evidence: OffsetEvidence
    red: Radiometry
    nir: Radiometry

    @property
    def contradicts_metadata(self) -> bool:
        """The pixels were conclusive and disagree with the metadata's offset."""
        return self.evidence.verdict is not OffsetVerdict.INCONCLUSIVE and not math.isclose(
            self.red.offset, self.prior.offset, abs_tol=1e-9)

    @property
    def metadata_text(self) -> str:
        return f"offset {self.prior.offset:g} ({self.prior.rule})"

    @property
    def applied_text(self) -> str:
        """``scale …, offset … (rule)``, as logged and shown in the scenes table."""
        return f"scale {self.red.scale:g}, offset {self.red.offset:g} ({self.red.rule})"


class UnreadableAssetError(CorruptImageError):
    """An asset of an item cannot be opened or read; the message names the item, the asset key and the href."""

    def __init__(self, item_id: str, key: str, href: str, cause: Exception) -> None:
        self.item_id, self.key, self.href = item_id, key, href
        super().__init__(f"item {item_id}: asset {key!r} at {href} cannot be read: {_one_line(cause)}")


@dataclass
class OffsetCheck:
    """Decisions for the readable items; for the others, why they cannot be read."""

    decisions: dict[str, OffsetDecision]
    unreadable: dict[str, UnreadableAssetError]

    @property
    def contradicted(self) -> list[OffsetDecision]:
        return [d for d in self.decisions.values() if d.contradicts_metadata]


def decide(item: pystac.Item, evidence: OffsetEvidence) -> OffsetDecision:
    """The radiometry of ``item``'s red and nir: the metadata's, unless the pixels are conclusive."""
    prior_red, prior_nir = radiometry(item, "red"), radiometry(item, "nir")
    verdict = evidence.verdict
    if verdict is OffsetVerdict.INCONCLUSIVE:
        return OffsetDecision(item.id, prior_red, evidence, prior_red, prior_nir)

    def by_pixels(prior: Radiometry) -> Radiometry:
        offset = 0.0 if verdict is OffsetVerdict.REMOVED else -OFFSET_DN * prior.scale
        agrees = "agrees with" if math.isclose(offset, prior.offset, abs_tol=1e-9) else "overrides"
        return Radiometry(prior.scale, offset, f"pixels: {verdict.value}; {agrees} metadata {prior.rule}")

    return OffsetDecision(item.id, prior_red, evidence, by_pixels(prior_red), by_pixels(prior_nir))


def dark_share(red_dn: np.ndarray, scl: np.ndarray, scale: float, masked: Iterable[int] = ()) -> OffsetEvidence:
    """The statistic on co-registered red DN and SCL samples (0 = nodata in either)."""
    if SCL_VEGETATION in set(masked):
        return OffsetEvidence(0, None)
    vegetation = (scl == SCL_VEGETATION) & (red_dn > 0)
    n = int(np.count_nonzero(vegetation))
    if n == 0:
        return OffsetEvidence(0, None)
    dark = np.count_nonzero(red_dn[vegetation].astype(np.float64) * scale < DARK_BELOW)
    return OffsetEvidence(n, dark / n)


def asset_href(item: pystac.Item, key: str) -> str:
    """The absolute href (path or URL) of ``item``'s asset ``key``."""
    asset = item.assets[key]
    return asset.get_absolute_href() or asset.href


def _sample(src: rasterio.DatasetReader, bounds: tuple[float, float, float, float], side: int
            ) -> tuple[np.ndarray, tuple[float, float, float, float]] | None:
    """``src`` band 1 over ``bounds`` (its CRS) at about ``side`` px on the longer side, with pixels no finer than
    :data:`SAMPLE_MIN_PIXEL_M` (a projected CRS in metres); None outside it."""
    full = rasterio.windows.Window(0, 0, src.width, src.height)
    try:
        window = rasterio.windows.from_bounds(*bounds, transform=src.transform).intersection(full)
    except rasterio.errors.WindowError:
        return None
    col0, row0 = math.floor(window.col_off), math.floor(window.row_off)
    col1 = min(src.width, math.ceil(window.col_off + window.width))
    row1 = min(src.height, math.ceil(window.row_off + window.height))
    if col1 <= col0 or row1 <= row0:
        return None
    window = rasterio.windows.Window(col0, row0, col1 - col0, row1 - row0)
    finest = SAMPLE_MIN_PIXEL_M / abs(src.transform.a) if src.crs and src.crs.is_projected else 1.0
    factor = max(1.0, finest, max(window.width, window.height) / side)
    shape = (max(1, round(window.height / factor)), max(1, round(window.width / factor)))
    data = src.read(1, window=window, out_shape=shape, resampling=Resampling.nearest)
    return data, rasterio.windows.bounds(window, src.transform)


def sample_evidence(item: pystac.Item, geobox: GeoBox, masked: Iterable[int] = (), side: int = SAMPLE_SIDE,
                    options: Mapping[str, str | int] | None = None) -> OffsetEvidence:
    """Read ``item``'s red and SCL over ``geobox``'s extent (overview level) and compute the statistic.

    Opens ``nir`` too (its header only), so every asset the composite needs is known to be readable. Raises
    :class:`UnreadableAssetError` naming the asset otherwise. Call inside ``rasterio.Env`` with the GDAL
    ``options``.
    """
    red_href, nir_href, scl_href = (asset_href(item, k) for k in ("red", "nir", "scl"))
    with _opened(item.id, "red", red_href, options) as red_src:
        bounds = geobox.extent.to_crs(red_src.crs).boundingbox
        try:
            red_sample = _sample(red_src, tuple(bounds), side)
        except READ_ERRORS as exc:
            raise UnreadableAssetError(item.id, "red", red_href, exc) from exc
    with _opened(item.id, "nir", nir_href, options):
        pass
    if red_sample is None:
        return OffsetEvidence(0, None)
    red, red_bounds = red_sample
    with _opened(item.id, "scl", scl_href, options) as scl_src:
        try:
            window = rasterio.windows.from_bounds(*red_bounds, transform=scl_src.transform)
            scl = scl_src.read(1, window=window, out_shape=red.shape, resampling=Resampling.nearest,
                               boundless=True, fill_value=0)
        except READ_ERRORS as exc:
            raise UnreadableAssetError(item.id, "scl", scl_href, exc) from exc
    return dark_share(red, scl, radiometry(item, "red").scale, masked)


class _opened:
    """The process's kept dataset of ``href`` (:mod:`ingestion.imagery.datasets`, held under its lock), whose
    failure to open names the item and asset."""

    def __init__(self, item_id: str, key: str, href: str, options: Mapping[str, str | int] | None) -> None:
        self.item_id, self.key, self.href, self.options = item_id, key, href, options

    def __enter__(self) -> rasterio.DatasetReader:
        self.use = opened(self.href, self.options)
        try:
            return self.use.__enter__()
        except READ_ERRORS as exc:
            raise UnreadableAssetError(self.item_id, self.key, self.href, exc) from exc

    def __exit__(self, *exc: object) -> None:
        self.use.__exit__(*exc)


def check_offsets(items: Sequence[pystac.Item], geobox: GeoBox, masked: Iterable[int] = (),
                  gdal_options: Mapping[str, str | int] | None = None, threads: int = CHECK_THREADS,
                  warn: bool = True) -> OffsetCheck:
    """Decide every item's offset from a sample of its pixels over ``geobox`` (any CRS), on the process's reader
    pool of ``threads`` (:func:`ingestion.imagery.blocks.io_pool`), reading with ``gdal_options`` (default: the
    pipeline's, :func:`ingestion.imagery.gdal_env.gdal_options`).

    Logs each decision, and a warning naming every item whose pixels contradict its metadata; with ``warn``
    False that warning is logged at info, for a batch that reports each such item once
    (:func:`ingestion.batch_reports.report_contradictions`).
    """
    masked = tuple(masked)
    options = default_gdal_options() if gdal_options is None else dict(gdal_options)

    def one(item: pystac.Item) -> OffsetDecision | UnreadableAssetError:
        with rasterio.Env(**options):
            try:
                return decide(item, sample_evidence(item, geobox, masked, options=options))
            except UnreadableAssetError as exc:
                return exc

    # the process's reader pool, shared with the composites' block reads: starting threads per check cost more
    # than its reads for a small area (96 areas of 3 km: 4.6 ms per thread start, 6 per area-year)
    results = list(io_pool(max(1, threads)).map(one, items))
    check = OffsetCheck({}, {})
    for item, result in zip(items, results, strict=True):
        if isinstance(result, UnreadableAssetError):
            check.unreadable[item.id] = result
            continue
        check.decisions[item.id] = result
        if result.contradicts_metadata:
            log.log(logging.WARNING if warn else logging.INFO,
                    "scene %s: offset metadata contradicted by its pixels: metadata says %s, pixels say %s; "
                    "applying offset %g", item.id, result.metadata_text, result.evidence.describe(),
                    result.red.offset)
        else:
            log.info("scene %s: offset %g (%s; pixels: %s)", item.id, result.red.offset, result.prior.rule,
                     result.evidence.describe())
    return check


def _one_line(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0]
