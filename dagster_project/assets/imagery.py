"""Per area and year: ``ndvi_composite`` (COG file) and its load into ``raw.ndvi_composites``.

A step materialises a batch of area-years (:mod:`dagster_project.partitions`), one after the other, each with
its own metadata. An area-year that fails (no scenes, an unreadable item) does not stop the others: the step
records the ones it materialised and then fails naming the others and why.
"""


from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dagster as dg

from dagster_project.assets.scenes import SCENES_KEY
from dagster_project.partitions import (
    BATCH_POLICY,
    PartitionFailure,
    area_year_partitions,
    area_years,
    each_partition,
    label,
    materialised,
)
from dagster_project.refresh import forced
from dagster_project.resources import PostGISResource
from ingestion import pipeline
from ingestion.batch_reports import report_contradictions, report_drops
from ingestion.config import AreaConfig, PipelineConfig
from ingestion.export.preview import NDVI_RANGE, PREVIEW_PX, composite_png, markdown_image
from ingestion.imagery.cog import read_preview
from ingestion.imagery.datasets import keeping_open
from ingestion.imagery.scheduler import scheduler_address
from ingestion.load.postgis import published_districts_version
from ingestion.updates import load_composite_if_changed

MIN_VALID_FRACTION = 0.5

SCENES_SCHEMA = dg.TableSchema(columns=[
    dg.TableColumn("item", "string", description="STAC item id"),
    dg.TableColumn("kept", "bool"),
    dg.TableColumn("reason", "string", description="why it was kept or dropped"),
    dg.TableColumn("cloud_cover", "float", description="eo:cloud_cover, percent"),
    dg.TableColumn("offset_metadata", "string", description="the offset the item's metadata claims, and why"),
    dg.TableColumn("offset_pixels", "string",
                   description="what the item's own pixels say: the share of clear vegetation pixels whose red "
                               "reads below 0.1 with no offset (near 1: offset removed; near 0: offset in DN)"),
    dg.TableColumn("offset_applied", "float", description="the offset added to DN × scale (reflectance units)"),
    dg.TableColumn("offset_rule", "string", description="how the applied offset was decided"),
])


def _scenes_table(result: pipeline.YearComposite) -> dg.TableMetadataValue:
    """One row per candidate scene: kept or dropped and why, cloud cover and the offset decision."""
    cover = {i.id: i.properties.get("eo:cloud_cover") for i in result.selection.items}
    offsets = result.composite.offsets
    rows = []
    for d in result.selection.decisions:
        offset = offsets.get(d.item_id)
        rows.append(dg.TableRecord({
            "item": d.item_id, "kept": d.kept, "reason": d.reason,
            "cloud_cover": round(float(cover[d.item_id]), 2) if cover.get(d.item_id) is not None else None,
            "offset_metadata": offset.metadata_text if offset else "",
            "offset_pixels": offset.evidence.describe() if offset else "",
            "offset_applied": offset.red.offset if offset else None,
            "offset_rule": offset.red.rule if offset else "",
        }))
    return dg.MetadataValue.table(rows, schema=SCENES_SCHEMA)


def _offset_check(done: list[tuple[dg.MultiPartitionKey, pipeline.YearComposite]],
                  partition: dict) -> dg.AssetCheckResult:
    """Warns when any kept item's offset metadata is contradicted by its own pixels."""
    offsets = {i: d for _, result in done for i, d in result.composite.offsets.items()}
    contradicted = sorted(i for i, d in offsets.items() if d.contradicts_metadata)
    text = f"{len(contradicted)} of {len(offsets)} items' offset metadata contradicted by their pixels"
    return dg.AssetCheckResult(
        check_name="offset_metadata_agrees", passed=not contradicted, severity=dg.AssetCheckSeverity.WARN,
        description=text, metadata={**partition, "summary": text, "contradicted": ", ".join(contradicted)})


def _composite_metadata(area: AreaConfig, year: int, result: pipeline.YearComposite) -> dict:
    """The partition's figures, scenes table and preview (summary statistics gathered while the blocks were
    written; no full array is read back)."""
    comp = result.composite
    png = composite_png(read_preview(result.path, PREVIEW_PX))
    return {
        "skipped": result.skipped,  # inputs unchanged: the COG was left as it was (issue 20)
        "inputs_version": result.inputs_version or "",
        "path": dg.MetadataValue.path(str(result.path)),
        "scenes_used": len(result.selection.items),
        "scenes_dropped": len(result.selection.dropped),
        "scenes": _scenes_table(result),
        "offsets_contradicted": sum(d.contradicts_metadata for d in comp.offsets.values()),
        "clear_days": len(comp.days),
        "valid_fraction": round(comp.valid_fraction, 4),
        "grid": f"{comp.geobox.width}x{comp.geobox.height} px, {area.imagery.resolution:g} m, {comp.geobox.crs}",
        "mean_ndvi": round(comp.stats.ndvi_mean, 4) if comp.stats.valid_pixels else None,
        "ndvi_min_max": [round(comp.stats.ndvi_min, 4), round(comp.stats.ndvi_max, 4)]
        if comp.stats.valid_pixels else None,
        "compute": scheduler_address(area.compute.dask_scheduler) or "local threads",
        "preview": dg.MetadataValue.md(
            f"**{area.code} {year}: median NDVI** (red {NDVI_RANGE[0]:g} to green {NDVI_RANGE[1]:g}, as the strip "
            f"below it; grey: no clear observation)\n\n{markdown_image(png, f'NDVI {year}')}"),
    }


def _check_results(done: list[tuple[dg.MultiPartitionKey, pipeline.YearComposite]]
                   ) -> Iterator[dg.AssetCheckResult]:
    """One result per check for the batch: it passes when it passes for every area-year, and its metadata
    names the area-years it did not pass for (a check is not partitioned)."""
    if not done:
        return
    results = [(label(key), r.composite) for key, r in done]
    partitions = {"partitions": ", ".join(name for name, _ in results)}
    out_of_range = [name for name, comp in results if not comp.stats.in_range]
    yield dg.AssetCheckResult(check_name="ndvi_in_range", passed=not out_of_range,
                              metadata={**partitions, "failed_for": ", ".join(out_of_range)})
    low = {name: round(comp.valid_fraction, 4) for name, comp in results if comp.valid_fraction < MIN_VALID_FRACTION}
    yield dg.AssetCheckResult(
        check_name="valid_fraction", passed=not low, severity=dg.AssetCheckSeverity.WARN,
        metadata={**partitions, "below": ", ".join(f"{n} {v}" for n, v in low.items()),
                  "valid_fraction": min(round(comp.valid_fraction, 4) for _, comp in results)})
    yield _offset_check(done, partitions)


def build_imagery_assets(config: PipelineConfig) -> list[dg.AssetsDefinition]:
    """The yearly composite and its load, partitioned by area × year."""
    partitions = area_year_partitions(config)

    @dg.asset(
        group_name="imagery", partitions_def=partitions,
        deps=[dg.AssetKey("aoi_boundary"), SCENES_KEY],  # stale when its observed scenes change (issue 20)
        kinds={"python", "stac"}, pool="composite", backfill_policy=BATCH_POLICY,
        description="Median NDVI composite of one year's clear Sentinel-2 observations over the area (COG, "
                    "band 2 = clear days).",
        check_specs=[
            dg.AssetCheckSpec("ndvi_in_range", asset="ndvi_composite",
                              description="Every valid pixel lies in [-1, 1] and no NaN/inf is stored."),
            dg.AssetCheckSpec("valid_fraction", asset="ndvi_composite",
                              description=f"Warns when under {MIN_VALID_FRACTION:.0%} of the area's pixels have "
                                          "a clear day."),
            dg.AssetCheckSpec("offset_metadata_agrees", asset="ndvi_composite",
                              description="Warns when an item's offset metadata (earthsearch:boa_offset_applied, "
                                          "raster:bands, baseline) is contradicted by its own pixels; the pixels "
                                          "decided the offset applied (see the scenes table)."),
        ],
    )
    def ndvi_composite(context: dg.AssetExecutionContext) -> Iterator[Any]:
        runnable, failed = area_years(config, context)
        done: list[tuple[dg.MultiPartitionKey, pipeline.YearComposite]] = []
        metadata = {}
        force = forced(context)

        # the batch's searches first, many in flight at once (a STAC API answers each in a few hundred ms)
        searches = pipeline.search_area_years([(area, year) for _, area, year in runnable])

        # a batch warns once per scene (pixels that contradict its metadata, a broken scene dropped), after its
        # area-years (below), not once per scene and area-year
        batch = len(runnable) > 1

        def composite(area: AreaConfig, year: int, found: Any) -> tuple[pipeline.YearComposite, dict]:
            result = pipeline.composite_year(area, year, force=force, found=found, warn=not batch)
            return result, _composite_metadata(area, year, result)

        # small area-years are mostly fixed cost (search, offset check, COG finishing): a few at once keep both
        # cores busy; their block reads share the process's reader pool (compute.io_concurrency)
        at_once = min((area.compute.area_years_at_once for _, area, _ in runnable), default=1)
        # the batch's scenes are opened once, not by each area-year's offset check and blocks
        with keeping_open(), ThreadPoolExecutor(max_workers=at_once, thread_name_prefix="composite") as pool:
            futures = [(key, area, year, pool.submit(composite, area, year, found))
                       for (key, area, year), found in zip(runnable, searches, strict=True)]
            for number, (key, area, year, future) in enumerate(futures, 1):
                with each_partition(key, failed, alone=len(runnable) == 1 and not failed):
                    result, metadata[key] = future.result()
                    context.add_asset_metadata(metadata[key], partition_key=key)
                    done.append((key, result))
                if batch:
                    state = "failed" if label(key) in failed else "skipped" if result.skipped else "done"
                    context.log.info(f"composite {number} of {len(runnable)}: {area.code} {year} {state}")
        if batch:  # the area-years computed now: a skipped one read nothing
            computed = [(label(key), result) for key, result in done if not result.skipped]
            report_drops((name, result.selection) for name, result in computed)
            report_contradictions((name, result.composite.offsets) for name, result in computed)
        if failed:
            yield from materialised(context, metadata)
            raise PartitionFailure("ndvi_composite", failed, len(done))
        # a run of one area-year records its inputs version as the data version (equal inputs, equal version);
        # Dagster takes one data version per step, so a batch records the default (code and inputs)
        version = done[0][1].inputs_version if len(done) == 1 else None
        yield dg.MaterializeResult(check_results=list(_check_results(done)),
                                   data_version=dg.DataVersion(version) if version else None)

    @dg.asset(group_name="imagery", partitions_def=partitions, deps=[ndvi_composite], kinds={"postgres"},
              backfill_policy=BATCH_POLICY,
              description="The area-year's composite in raw.ndvi_composites, replaced in one transaction that "
                          "also publishes the area's staged districts.")
    def raw_ndvi_composites(context: dg.AssetExecutionContext, postgis: PostGISResource) -> Iterator[Any]:
        runnable, failed = area_years(config, context)
        metadata = {}
        # each area-year loaded in a transaction of its own, committed before the next (load_composite)
        with postgis.connect(autocommit=True) as conn:
            for key, area, year in runnable:
                with each_partition(key, failed, alone=len(runnable) == 1 and not failed):
                    path = pipeline.composite_path(area, year)
                    if not path.exists():
                        raise dg.Failure(description=f"{path} is missing: materialise ndvi_composite for "
                                                     f"{area.code} {year}")
                    loaded = load_composite_if_changed(conn, area.code, year, path, force=forced(context))
                    metadata[key] = {"dagster/row_count": loaded.tiles, "table": "raw.ndvi_composites",
                                     "districts_version": published_districts_version(conn, area.code),
                                     "skipped": loaded.skipped}
                    context.add_asset_metadata(metadata[key], partition_key=key)
        if failed:
            yield from materialised(context, metadata)
            raise PartitionFailure("raw_ndvi_composites", failed, len(metadata))
        yield dg.MaterializeResult()

    return [ndvi_composite, raw_ndvi_composites]
