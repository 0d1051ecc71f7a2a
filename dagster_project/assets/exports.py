"""Exports by cadence: each year's GeoJSON (area × year), and the area's latest layer, breaks and map (area).

A step writes a batch of partitions (:mod:`dagster_project.partitions`): the latest layers of many areas
refresh in one run.
"""


import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dagster as dg
import psycopg

from dagster_project.assets.dbt import AFTER_ANY_YEAR_AND_PARENTS
from dagster_project.partitions import (
    BATCH_POLICY,
    PartitionFailure,
    area_partitions,
    area_year_partitions,
    area_years,
    areas_of,
    each_partition,
    materialised,
)
from dagster_project.resources import PostGISResource
from ingestion import pipeline
from ingestion.config import AreaConfig, PipelineConfig
from ingestion.export.preview import markdown_image


def build_export_assets(config: PipelineConfig) -> list[dg.AssetsDefinition]:
    """``yearly_exports`` (area × year) and ``latest_exports`` (area, refreshed after any year of the area)."""

    @dg.asset(group_name="exports", partitions_def=area_year_partitions(config), kinds={"python", "geojson"},
              backfill_policy=BATCH_POLICY,
              deps=[dg.AssetKey("ndvi_stats_yearly"), dg.AssetKey("ndvi_stats_yearly_distribution")],
              description="{area}/{year}/stats/zonal_stats_{year}.geojson: every district of the area with the "
                          "year's statistics (EPSG:4326, rounded).")
    def yearly_exports(context: dg.AssetExecutionContext, postgis: PostGISResource) -> Iterator[Any]:
        runnable, failed = area_years(config, context)
        metadata = {}
        with postgis.connect() as conn:
            for key, area, year in runnable:
                with each_partition(key, failed, alone=len(runnable) == 1 and not failed):
                    metadata[key] = {"path": dg.MetadataValue.path(str(pipeline.export_year(conn, area, year)))}
                    context.add_asset_metadata(metadata[key], partition_key=key)
        if failed:
            yield from materialised(context, metadata)
            raise PartitionFailure("yearly_exports", failed, len(metadata))
        yield dg.MaterializeResult()

    @dg.asset(group_name="exports", partitions_def=area_partitions(config), kinds={"python", "geojson"},
              backfill_policy=BATCH_POLICY, deps=[dg.AssetKey("ndvi_stats_latest"), dg.AssetKey("ndvi_change"),
                    dg.AssetKey("ndvi_change_baseline"), dg.AssetKey("ndvi_trend")],
              automation_condition=AFTER_ANY_YEAR_AND_PARENTS,
              description="{area}/latest/: the latest layer (GeoJSON), classification breaks, a PNG map and the "
                          "interactive web map (ndvi_map.html); also "
                          "re-writes every yearly GeoJSON whose statistics changed (after a re-districting).")
    def latest_exports(context: dg.AssetExecutionContext, postgis: PostGISResource) -> Iterator[Any]:
        areas, failed, metadata = areas_of(config, context), {}, {}

        # one connection per export thread, kept for the batch's areas (a connection per area cost more than the
        # reads of a small area); closed when the step ends
        connections: list[psycopg.Connection] = []
        per_thread = threading.local()

        def export(area: AreaConfig) -> pipeline.LatestExport:
            conn = getattr(per_thread, "conn", None)
            if conn is None or conn.closed or conn.broken:
                conn = per_thread.conn = postgis.connect()
                connections.append(conn)
            inputs = pipeline.read_latest_inputs(conn, area.code)
            # committed before the breaks, maps and files are computed: no transaction waits on Python
            return pipeline.write_latest(inputs, area)

        # a few areas at once (compute.area_years_at_once): a small area's export is mostly reads, file writes
        # and PNG encoding, which leave the GIL; recorded in the batch's order
        at_once = min((area.compute.area_years_at_once for area in areas), default=1)
        try:
            with ThreadPoolExecutor(max_workers=at_once, thread_name_prefix="export") as pool:
                futures = [(area, pool.submit(export, area)) for area in areas]
                for area, future in futures:
                    with each_partition(area.code, failed, alone=len(areas) == 1):
                        latest = future.result()
                        _record_latest(context, area, latest, metadata)
        finally:
            for conn in connections:
                conn.close()
        if failed:
            yield from materialised(context, metadata)
            raise PartitionFailure("latest_exports", failed, len(metadata))
        yield dg.MaterializeResult()

    return [yearly_exports, latest_exports]


def _record_latest(context: dg.AssetExecutionContext, area: AreaConfig, latest: pipeline.LatestExport,
                   metadata: dict) -> None:
    """Log an area's latest export and add its partition's metadata (into ``metadata`` too)."""
    context.log.info(f"{area.code}: wrote {latest.geojson}, {latest.breaks_path}")
    metadata[area.code] = {
        "latest": dg.MetadataValue.path(str(latest.geojson)),
        "breaks": dg.MetadataValue.json(latest.breaks),
        "districts": latest.districts,
        "districts_with_values": latest.districts_with_values,
        "map": dg.MetadataValue.md(markdown_image(latest.map_png, "latest mean NDVI")),
        "web_map": dg.MetadataValue.url(latest.web_map.as_uri()),
    }
    context.add_asset_metadata(metadata[area.code], partition_key=area.code)
