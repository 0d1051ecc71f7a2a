"""Per area and year: ``ndvi_composite`` (COG file) and its load into ``raw.ndvi_composites``."""


import dagster as dg

from dagster_project.assets.scenes import SCENES_KEY  # issue 20
from dagster_project.partitions import area_and_year, area_year_partitions
from dagster_project.refresh import forced  # issue 20
from dagster_project.resources import PostGISResource
from ingestion import pipeline
from ingestion.config import PipelineConfig
from ingestion.export.preview import composite_png, markdown_image
from ingestion.imagery.cog import read_preview
from ingestion.imagery.scheduler import scheduler_address
from ingestion.load.postgis import published_districts_version
from ingestion.updates import load_composite_if_changed  # issue 20

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


def _offset_check(result: pipeline.YearComposite, partition: dict) -> dg.AssetCheckResult:
    """Warns when any kept item's offset metadata is contradicted by its own pixels."""
    offsets = result.composite.offsets
    contradicted = sorted(i for i, d in offsets.items() if d.contradicts_metadata)
    text = f"{len(contradicted)} of {len(offsets)} items' offset metadata contradicted by their pixels"
    return dg.AssetCheckResult(
        check_name="offset_metadata_agrees", passed=not contradicted, severity=dg.AssetCheckSeverity.WARN,
        description=text, metadata={**partition, "summary": text, "contradicted": ", ".join(contradicted)})


def build_imagery_assets(config: PipelineConfig) -> list[dg.AssetsDefinition]:
    """The yearly composite and its load, partitioned by area × year."""
    partitions = area_year_partitions(config)

    @dg.asset(
        group_name="imagery", partitions_def=partitions,
        deps=[dg.AssetKey("aoi_boundary"), SCENES_KEY],  # issue 20: stale when its scenes change
        kinds={"python", "stac"}, pool="composite",
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
    def ndvi_composite(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        area, year = area_and_year(config, context)
        try:
            result = pipeline.composite_year(area, year, force=forced(context))  # issue 20: skip when unchanged
        except pipeline.NoScenesError as exc:
            raise dg.Failure(description=str(exc)) from None
        comp = result.composite  # summary statistics gathered while the blocks were written; no full array
        png = composite_png(read_preview(result.path), f"{area.code} {year}: median NDVI")
        partition = {"area": area.code, "year": year}
        return dg.MaterializeResult(
            data_version=dg.DataVersion(result.inputs_version) if result.inputs_version else None,  # issue 20
            metadata={
                "skipped": result.skipped, "inputs_version": result.inputs_version or "",  # issue 20
                "path": dg.MetadataValue.path(str(result.path)),
                "scenes_used": len(result.selection.items),
                "scenes_dropped": len(result.selection.dropped),
                "scenes": _scenes_table(result),
                "offsets_contradicted": sum(d.contradicts_metadata for d in comp.offsets.values()),
                "clear_days": len(comp.days),
                "valid_fraction": round(comp.valid_fraction, 4),
                "grid": f"{comp.geobox.width}x{comp.geobox.height} px, {area.imagery.resolution:g} m, "
                        f"{comp.geobox.crs}",
                "mean_ndvi": round(comp.stats.ndvi_mean, 4) if comp.stats.valid_pixels else None,
                "ndvi_min_max": [round(comp.stats.ndvi_min, 4), round(comp.stats.ndvi_max, 4)]
                if comp.stats.valid_pixels else None,
                "compute": scheduler_address(area.compute.dask_scheduler) or "local threads",
                "preview": dg.MetadataValue.md(markdown_image(png, f"NDVI {year}")),
            },
            check_results=[
                dg.AssetCheckResult(check_name="ndvi_in_range", passed=comp.stats.in_range, metadata=partition),
                dg.AssetCheckResult(check_name="valid_fraction", passed=comp.valid_fraction >= MIN_VALID_FRACTION,
                                    severity=dg.AssetCheckSeverity.WARN,
                                    metadata={**partition, "valid_fraction": round(comp.valid_fraction, 4)}),
                _offset_check(result, partition),
            ],
        )

    @dg.asset(group_name="imagery", partitions_def=partitions, deps=[ndvi_composite], kinds={"postgres"},
              description="The area-year's composite in raw.ndvi_composites, replaced in one transaction that "
                          "also publishes the area's staged districts.")
    def raw_ndvi_composites(context: dg.AssetExecutionContext, postgis: PostGISResource) -> dg.MaterializeResult:
        area, year = area_and_year(config, context)
        path = pipeline.composite_path(area, year)
        if not path.exists():
            raise dg.Failure(description=f"{path} is missing: materialise ndvi_composite for {area.code} {year}")
        with postgis.connect() as conn:
            loaded = load_composite_if_changed(conn, area.code, year, path, force=forced(context))  # issue 20
            version = published_districts_version(conn, area.code)
        return dg.MaterializeResult(metadata={"dagster/row_count": loaded.tiles, "table": "raw.ndvi_composites",
                                              "districts_version": version, "skipped": loaded.skipped})

    return [ndvi_composite, raw_ndvi_composites]
