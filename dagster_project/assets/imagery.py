"""Yearly ``ndvi_composite`` (COG file) and its load into ``raw.ndvi_composites``."""


import dagster as dg

from dagster_project.assets.vector import aoi_boundary
from dagster_project.resources import PostGISResource
from dagster_project.settings import AREA, year_partitions
from ingestion import pipeline
from ingestion.export.preview import composite_png, markdown_image
from ingestion.imagery.cog import read_preview
from ingestion.imagery.scheduler import scheduler_address
from ingestion.load.postgis import load_composite

MIN_VALID_FRACTION = 0.5


@dg.asset(
    group_name="imagery", partitions_def=year_partitions, deps=[aoi_boundary], kinds={"python", "stac"},
    description="Median NDVI composite of one year's clear Sentinel-2 observations (COG, band 2 = clear days).",
    pool="composite",  # bounds how many composites run at once (memory budget; see dagster.yaml)
    check_specs=[
        dg.AssetCheckSpec("ndvi_in_range", asset="ndvi_composite",
                          description="every valid pixel lies in [-1, 1] and no NaN/inf is stored"),
        dg.AssetCheckSpec("valid_fraction", asset="ndvi_composite",
                          description=f"warns when under {MIN_VALID_FRACTION:.0%} of pixels have a clear day"),
    ],
)
def ndvi_composite(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    year = int(context.partition_key)
    try:
        result = pipeline.composite_year(AREA, year)
    except pipeline.NoScenesError as exc:
        raise dg.Failure(description=str(exc)) from None
    comp = result.composite  # summary statistics gathered while the blocks were written; no full array
    scenes = [{"item": d.item_id, "kept": d.kept, "reason": d.reason} for d in result.selection.decisions]
    png = composite_png(read_preview(result.path), f"{AREA.name} {year}: median NDVI")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(result.path)),
            "scenes_used": len(result.selection.items),
            "scenes_dropped": len(result.selection.dropped),
            "scenes": dg.MetadataValue.json(scenes),
            "radiometry": dg.MetadataValue.json(comp.radiometry),
            "clear_days": len(comp.days),
            "valid_fraction": round(comp.valid_fraction, 4),
            "grid": f"{comp.geobox.width}x{comp.geobox.height} px, {AREA.imagery.resolution} m, {comp.geobox.crs}",
            "mean_ndvi": comp.stats.ndvi_mean,
            "ndvi_min_max": [comp.stats.ndvi_min, comp.stats.ndvi_max] if comp.stats.valid_pixels else None,
            "compute": scheduler_address(AREA.compute.dask_scheduler) or "local threads",
            "preview": dg.MetadataValue.md(markdown_image(png, f"NDVI {year}")),
        },
        check_results=[
            dg.AssetCheckResult(check_name="ndvi_in_range", passed=comp.stats.in_range),
            dg.AssetCheckResult(check_name="valid_fraction", passed=comp.valid_fraction >= MIN_VALID_FRACTION,
                                severity=dg.AssetCheckSeverity.WARN,
                                metadata={"valid_fraction": comp.valid_fraction}),
        ],
    )


@dg.asset(group_name="imagery", partitions_def=year_partitions, deps=[ndvi_composite], kinds={"postgres"},
          description="The year's composite in raw.ndvi_composites (replaced in one transaction).")
def raw_ndvi_composites(context: dg.AssetExecutionContext, postgis: PostGISResource) -> dg.MaterializeResult:
    year = int(context.partition_key)
    path = pipeline.composite_path(AREA, year)
    if not path.exists():
        raise dg.Failure(description=f"{path} is missing: materialise ndvi_composite for {year} first")
    with postgis.connect() as conn:
        tiles = load_composite(conn, year, path)
    return dg.MaterializeResult(metadata={"tiles": tiles, "table": "raw.ndvi_composites", "year": year})
