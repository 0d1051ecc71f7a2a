"""Per area: ``districts`` (file → raw.districts_staged) and ``aoi_boundary`` (boundary file or union)."""


import hashlib
from collections.abc import Iterator
from typing import Any

import dagster as dg

from dagster_project.partitions import (
    BATCH_POLICY,
    PartitionFailure,
    area_partitions,
    areas_of,
    each_partition,
    materialised,
)
from dagster_project.resources import PostGISResource
from ingestion import pipeline
from ingestion.config import PipelineConfig
from ingestion.export.preview import markdown_image, outline_png
from ingestion.load.postgis import published_districts_version, stage_districts


def single_version(metadata: dict[str, dict], field: str) -> dg.MaterializeResult:
    """The step's result: a run of one area records the content's version as its data version (equal content,
    equal version: re-staging the same districts, or an AOI of the same shape, makes nothing downstream stale).
    Dagster takes one data version per step, so a batch of areas records the default (code and inputs)."""
    if len(metadata) == 1:
        return dg.MaterializeResult(data_version=dg.DataVersion(next(iter(metadata.values()))[field]))
    return dg.MaterializeResult()


def build_input_assets(config: PipelineConfig) -> list[dg.AssetsDefinition]:
    """The area inputs, partitioned by area."""
    partitions = area_partitions(config)

    @dg.asset(group_name="inputs", partitions_def=partitions, kinds={"postgres", "python"},
              backfill_policy=BATCH_POLICY,
              description="The area's districts from its vector file, validated and staged in "
                          "raw.districts_staged. The area's next year that loads publishes them to raw.districts "
                          "in the same transaction; dbt then recomputes every year of the area for them.")
    def districts(context: dg.AssetExecutionContext, postgis: PostGISResource) -> Iterator[Any]:
        areas, failed, metadata = areas_of(config, context), {}, {}
        # one connection for the batch; each area staged in a transaction of its own, committed before the next
        with postgis.connect(autocommit=True) as conn:
            for area in areas:
                with each_partition(area.code, failed, alone=len(areas) == 1):
                    gdf = pipeline.prepare_districts(area)
                    rows, version = stage_districts(conn, area.code, gdf)
                    published = published_districts_version(conn, area.code)
                    changed = published != version
                    context.log.info(f"{area.code}: staged {rows} districts (version {version})" + (
                        "; they replace the published ones with the next year that loads" if changed else
                        ", identical to the published ones"))
                    metadata[area.code] = {
                        "dagster/row_count": rows,
                        "source": area.districts.path,
                        "crs": gdf.crs.to_string(),
                        "area_km2": round(float(gdf.area.sum()) / 1e6, 3),
                        "districts_version": version,
                        "differs_from_published": changed,
                    }
                    context.add_asset_metadata(metadata[area.code], partition_key=area.code)
        if failed:
            yield from materialised(context, metadata)
            raise PartitionFailure("districts", failed, len(metadata))
        yield single_version(metadata, "districts_version")

    @dg.asset(group_name="inputs", partitions_def=partitions, deps=[districts], kinds={"python"},
              backfill_policy=BATCH_POLICY,
              description="The area of interest: the boundary file, or the union of the districts, in the "
                          "working CRS. Sets the area's imagery search and grid.")
    def aoi_boundary(context: dg.AssetExecutionContext) -> Iterator[Any]:
        areas, failed, metadata = areas_of(config, context), {}, {}
        for area in areas:
            with each_partition(area.code, failed, alone=len(areas) == 1):
                aoi = pipeline.build_aoi(area, pipeline.prepare_districts(area))
                png = outline_png(aoi.geometry)
                metadata[area.code] = {
                    "path": dg.MetadataValue.path(str(pipeline.aoi_path(area))),
                    "area_km2": round(float(aoi.area.sum()) / 1e6, 3),
                    # the composites depend on the AOI's shape only
                    "aoi_version": hashlib.sha256(aoi.geometry.iloc[0].wkb).hexdigest()[:16],
                    "preview": dg.MetadataValue.md(f"**{area.code}: area of interest**\n\n"
                                                   f"{markdown_image(png, 'AOI')}"),
                }
                context.add_asset_metadata(metadata[area.code], partition_key=area.code)
        if failed:
            yield from materialised(context, metadata)
            raise PartitionFailure("aoi_boundary", failed, len(metadata))
        yield single_version(metadata, "aoi_version")

    return [districts, aoi_boundary]
