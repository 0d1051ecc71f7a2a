"""The pipeline's steps as plain functions (Dagster assets are thin wrappers around these).

Output layout under ``cfg.area_dir`` (``<output_dir>/<area>/``; below it, the notebook's layout):
``aoi/aoi_boundary.gpkg``, ``{year}/composite/ndvi_composite_{year}.tif``,
``{year}/stats/zonal_stats_{year}.geojson``, ``latest/ndvi_stats_latest.geojson``, ``latest/breaks.json``,
``latest/ndvi_latest_map.png``, ``latest/ndvi_map.html``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import psycopg

from ingestion.area_outputs import aoi_path, composite_path, read_aoi  # noqa: F401  (pipeline.* for callers)
from ingestion.atomic import published
from ingestion.config import AreaConfig
from ingestion.export.breaks import classify, write_breaks
from ingestion.export.geojson import write_stats_geojson
from ingestion.export.preview import choropleth_png
from ingestion.export.stats import (
    change_history,
    district_shapes,
    latest_stats,
    stats_years,
    with_baseline_changes,
    yearly_frame,
    yearly_history,
    yearly_stats,
)
from ingestion.export.webmap import write_web_map
from ingestion.imagery.composite import CompositeSummary, stream_composite
from ingestion.imagery.gdal_env import gdal_options
from ingestion.imagery.grid import target_geobox
from ingestion.imagery.offset_check import check_offsets
from ingestion.imagery.scheduler import scheduler_address
from ingestion.observe import scenes_version
from ingestion.scenes import drop_unreadable, scene_query, screen_items, select_many, select_scenes
from ingestion.sources.base import SceneSelection
from ingestion.updates import config_version, discard_sidecar, inputs_version, unchanged_composite, write_sidecar
from ingestion.vector import read_boundary, read_districts
from ingestion.years import validate_year

log = logging.getLogger(__name__)


class NoScenesError(RuntimeError):
    """No usable scene for a year after filtering; the message gives the counts and reasons."""


def yearly_geojson_path(cfg: AreaConfig, year: int) -> Path:
    return cfg.area_dir / str(year) / "stats" / f"zonal_stats_{year}.geojson"


def prepare_districts(cfg: AreaConfig) -> gpd.GeoDataFrame:
    """Validated districts in the working CRS (``imagery.working_crs`` or the districts file's own)."""
    districts = read_districts(cfg.districts)
    if cfg.imagery.working_crs:
        districts = districts.to_crs(cfg.imagery.working_crs)
    if not districts.crs.is_projected:
        raise ValueError(f"districts file {cfg.districts.path} is in {districts.crs.to_string()}, which is not in "
                         "metres; set imagery.working_crs to a projected CRS (e.g. EPSG:28992 or a UTM zone)")
    return districts


def build_aoi(cfg: AreaConfig, districts: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The area of interest (boundary file, else the union of districts) written to ``aoi_path``."""
    crs = districts.crs.to_string()
    geom = read_boundary(cfg.boundary, crs) if cfg.boundary else districts.union_all()
    if not geom.intersects(districts.union_all()):
        raise ValueError(f"boundary {cfg.boundary} does not overlap any district")
    aoi = gpd.GeoDataFrame({"area": [cfg.name]}, geometry=[geom], crs=crs)
    with published(aoi_path(cfg)) as tmp:
        aoi.to_file(tmp, driver="GPKG", layer="aoi")
    return aoi


@dataclass
class YearComposite:
    year: int
    path: Path
    composite: CompositeSummary
    selection: SceneSelection
    inputs_version: str | None = None  # ingestion.updates: scenes, pixel config, code version
    skipped: bool = False  # the COG was already made from these inputs: nothing was recomputed


def search_area_years(area_years: Sequence[tuple[AreaConfig, int]]) -> list[SceneSelection | Exception | None]:
    """Every area-year's scene search at once, for :func:`composite_year`'s ``found``: a batch's searches in
    flight together (:func:`ingestion.scenes.select_many`) instead of one at the start of each composite.
    In the order of ``area_years``; None where the area's AOI or the year cannot be read (composite_year then
    raises that error itself, with its message)."""
    searches, numbers = [], []
    for number, (cfg, year) in enumerate(area_years):
        try:
            aoi, crs = read_aoi(cfg)
            searches.append((cfg, scene_query(cfg, year, aoi, crs)))
        except Exception:  # noqa: S112  (composite_year raises it again for this area-year, and says why)
            continue
        numbers.append(number)
    log.info("searching the scenes of %d area-year(s)", len(searches))
    out: list[SceneSelection | Exception | None] = [None] * len(area_years)
    for number, found in zip(numbers, select_many(searches), strict=True):
        out[number] = found
    return out


def composite_year(cfg: AreaConfig, year: int, force: bool = False,
                   found: SceneSelection | Exception | None = None, warn: bool = True) -> YearComposite:
    """Select scenes for ``year``, decide each one's offset from its pixels (dropping items with an unreadable
    asset), composite them on the area grid block by block and stream the COG (published atomically); runs on
    ``compute.dask_scheduler`` / ``$DASK_SCHEDULER_ADDRESS`` when set.

    When the COG's sidecar records the same inputs version (:mod:`ingestion.updates`), nothing is read or
    written: the result (``skipped``) carries the recorded figures. ``force`` recomputes anyway.

    ``found``: this area-year's search made beforehand with others (:func:`search_area_years`), not screened
    yet; a failed one is raised here. None: searched here. ``warn`` False: what is warned about per item (pixels
    that contradict its offset metadata, a drop for metadata or an asset that cannot be read) is logged at info,
    for a batch that reports each such item once (:mod:`ingestion.batch_reports`)."""
    year = validate_year(year)
    aoi, crs = read_aoi(cfg)
    if isinstance(found, Exception):
        raise found
    selection = (select_scenes(cfg, year, aoi, crs) if found is None
                 else screen_items(found, cfg.imagery.on_bad_item, warn=warn))
    geobox = target_geobox(aoi, crs, cfg.imagery.resolution)
    scenes = scenes_version(selection)
    version = inputs_version(scenes, config_version(cfg, aoi, crs, geobox))
    path = composite_path(cfg, year)
    if not force and (unchanged := unchanged_composite(path, version, selection, geobox)) is not None:
        log.info("composite for %d unchanged (inputs %s): skipped, %s kept as it is", year, version, path)
        return YearComposite(year, path, unchanged[0], unchanged[1], version, skipped=True)
    discard_sidecar(path)
    offsets = check_offsets(selection.items, geobox, cfg.imagery.masked_scl_classes,
                            gdal_options(cfg.compute.gdal_options), threads=cfg.compute.io_concurrency, warn=warn)
    selection = drop_unreadable(selection, offsets, cfg.imagery.on_bad_item, warn=warn)
    if not selection.items:
        raise NoScenesError(f"no usable Sentinel-2 scenes for {year} from {cfg.imagery.source}: "
                            f"{selection.summary()['dropped_by_reason'] or 'the search returned nothing'} "
                            f"(cloud limit {cfg.imagery.cloud_cover_max}%, months {cfg.imagery.months})")
    composite = stream_composite(selection.items, geobox, path, cfg.imagery.masked_scl_classes,
                                 chunk=cfg.compute.chunk_size, scheduler=scheduler_address(cfg.compute.dask_scheduler),
                                 gdal=cfg.compute.gdal_options, offsets=offsets.decisions,
                                 io_concurrency=cfg.compute.io_concurrency)
    write_sidecar(path, version, scenes, composite, selection)
    log.info("composite for %d written to %s", year, path)
    return YearComposite(year, path, composite, selection, version)


def export_year(conn: psycopg.Connection, cfg: AreaConfig, year: int) -> Path:
    """``{year}/stats/zonal_stats_{year}.geojson`` from ``analytics.ndvi_stats_yearly``.

    The read is one transaction that ends before the file is written (``conn`` must have none open).
    """
    year = validate_year(year)
    with conn.transaction():
        stats = yearly_stats(conn, cfg.code, year)
    return write_stats_geojson(stats, yearly_geojson_path(cfg, year), cfg.exports.decimals)


@dataclass
class LatestExport:
    geojson: Path
    breaks_path: Path
    map_path: Path
    breaks: dict
    map_png: bytes
    districts: int
    districts_with_values: int
    web_map: Path | None = None


@dataclass
class LatestInputs:
    """What the latest export reads from PostGIS, all from one snapshot; geometries in the working CRS."""

    districts: gpd.GeoDataFrame  # the area's published districts (code, name, geometry)
    latest: gpd.GeoDataFrame  # stats.latest_stats: every district with its latest statistics
    years: list[int]  # every year of the area in analytics.ndvi_stats_yearly
    history: list[dict]  # stats.yearly_history: every year's statistics of every current district
    change: list[dict]  # stats.change_history


def read_latest_inputs(conn: psycopg.Connection, area_code: str) -> LatestInputs:
    """Read everything the latest export needs in one read-only, repeatable-read transaction, which is
    committed before this returns (``conn`` must have no transaction open).

    Why: classifying and drawing 14,000 districts takes seconds to minutes of Python; a transaction left
    open meanwhile ("idle in transaction") holds its snapshot and locks (dbt's table swaps wait on it, and
    vacuum cannot clean up behind it). One snapshot also keeps the latest layer, the yearly files and the
    web map's history consistent with each other while a dbt build commits beside it.
    """
    with conn.transaction():
        conn.execute("set transaction isolation level repeatable read, read only")
        return LatestInputs(district_shapes(conn, area_code), latest_stats(conn, area_code),
                            stats_years(conn, area_code),
                            with_baseline_changes(conn, area_code, yearly_history(conn, area_code)),
                            change_history(conn, area_code))


def refresh_yearly_exports(inputs: LatestInputs, cfg: AreaConfig) -> list[Path]:
    """Re-write the yearly GeoJSON of every year in ``inputs.years`` whose content changed.

    A re-districting recomputes every year's statistics in one dbt run; this keeps every year's file to the
    current districts too. Unchanged files are left as they are. Returns the files that were (re)written.
    """
    written = []
    for year in inputs.years:
        path = yearly_geojson_path(cfg, year)
        before = path.stat().st_mtime_ns if path.exists() else None
        write_stats_geojson(yearly_frame(inputs.districts, inputs.history, year), path, cfg.exports.decimals)
        if path.stat().st_mtime_ns != before:
            written.append(path)
    return written


def indicator_breaks(stats: gpd.GeoDataFrame, cfg: AreaConfig) -> dict[str, dict]:
    """``breaks.json``'s ``indicators``: the latest layer's classifiable fields (mean and median NDVI, each
    green share, their changes against the baseline year and their trends), each classified like the mean
    (config ``exports``). A field without any value (e.g. trends with fewer than 3 years) is left out."""
    fields = [c for c in stats.columns
              if c in ("mean_ndvi", "median_ndvi") or c.startswith("green_share_")
              or c.endswith("_change_baseline") or (c.endswith("_trend") and c != "trend_null_reason")]
    columns = {field: stats[field].astype(float).to_numpy() for field in fields}
    columns = {field: values for field, values in columns.items() if np.isfinite(values).any()}
    # side by side: Fisher-Jenks runs without the GIL (breaks.fisher_jenks_kernel), O(k n^2) in districts
    with ThreadPoolExecutor(max_workers=max(len(columns), 1), thread_name_prefix="classify") as pool:
        breaks = pool.map(lambda values: classify(values, cfg.exports.scheme, cfg.exports.k, cfg.exports.colormap),
                          columns.values())
        return dict(zip(columns, breaks, strict=True))


def write_latest(inputs: LatestInputs, cfg: AreaConfig) -> LatestExport:
    """The latest layer, its classification breaks (on mean NDVI), a PNG map and the interactive web map,
    from what :func:`read_latest_inputs` read; touches no database.

    Also brings every year's GeoJSON to the current districts (:func:`refresh_yearly_exports`). The indicators
    are classified in other threads meanwhile (Fisher-Jenks of 14,000 districts: 0.5 s each, without the GIL).
    """
    stats = inputs.latest
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="indicator-breaks") as pool:
        classifying = pool.submit(indicator_breaks, stats, cfg)
        refreshed = refresh_yearly_exports(inputs, cfg)
        if refreshed:
            log.info("re-wrote %d yearly GeoJSON file(s) whose statistics changed: %s", len(refreshed),
                     ", ".join(p.name for p in refreshed))
        out = cfg.area_dir / "latest"
        # reprojected once for the GeoJSON and the web map (0.5 s each at 14,000 districts)
        wgs84 = stats.to_crs("EPSG:4326")
        geojson = write_stats_geojson(wgs84, out / "ndvi_stats_latest.geojson", cfg.exports.decimals)
        indicators = classifying.result()
    values = stats["mean_ndvi"].astype(float).to_numpy()
    # mean NDVI is one of the indicators: classified once (Fisher-Jenks of 14,000 districts takes ~0.6 s);
    # without any value, classify raises its clear error
    breaks = (dict(indicators["mean_ndvi"]) if "mean_ndvi" in indicators
              else classify(values, cfg.exports.scheme, cfg.exports.k, cfg.exports.colormap))
    breaks["indicators"] = indicators
    breaks_path = write_breaks(breaks, out / "breaks.json", column="mean_ndvi", layer="ndvi_stats_latest")
    png = choropleth_png(stats, "mean_ndvi", breaks, f"{cfg.name}: latest mean NDVI", out / "ndvi_latest_map.png")
    web_map = write_web_map(out, wgs84, inputs.history, inputs.change, breaks,
                            title=f"{cfg.name}: NDVI per district", decimals=cfg.exports.decimals,
                            basemap_url=cfg.exports.basemap_url,
                            labels={t.name: t.display_label for t in cfg.statistics.green_thresholds})
    return LatestExport(geojson, breaks_path, out / "ndvi_latest_map.png", breaks, png, len(stats),
                        int(np.isfinite(values).sum()), web_map=web_map)


def export_latest(conn: psycopg.Connection, cfg: AreaConfig) -> LatestExport:
    """:func:`read_latest_inputs`, then :func:`write_latest` with the read transaction already committed."""
    return write_latest(read_latest_inputs(conn, cfg.code), cfg)
