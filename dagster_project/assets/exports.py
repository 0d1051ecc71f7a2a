"""Exports by cadence: each year's GeoJSON (area × year), and the area's latest layer, breaks and map (area)."""


import dagster as dg

from dagster_project.assets.dbt import AFTER_ANY_YEAR
from dagster_project.partitions import area_and_year, area_partitions, area_year_partitions
from dagster_project.resources import PostGISResource
from ingestion import pipeline
from ingestion.config import PipelineConfig
from ingestion.export.preview import markdown_image


def build_export_assets(config: PipelineConfig) -> list[dg.AssetsDefinition]:
    """``yearly_exports`` (area × year) and ``latest_exports`` (area, refreshed after any year of the area)."""

    @dg.asset(group_name="exports", partitions_def=area_year_partitions(config), kinds={"python", "geojson"},
              deps=[dg.AssetKey("ndvi_stats_yearly"), dg.AssetKey("ndvi_stats_yearly_distribution")],
              description="{area}/{year}/stats/zonal_stats_{year}.geojson: every district of the area with the "
                          "year's statistics (EPSG:4326, rounded).")
    def yearly_exports(context: dg.AssetExecutionContext, postgis: PostGISResource) -> dg.MaterializeResult:
        area, year = area_and_year(config, context)
        with postgis.connect() as conn:
            path = pipeline.export_year(conn, area, year)
        return dg.MaterializeResult(metadata={"path": dg.MetadataValue.path(str(path))})

    @dg.asset(group_name="exports", partitions_def=area_partitions(config), kinds={"python", "geojson"},
              deps=[dg.AssetKey("ndvi_stats_latest"), dg.AssetKey("ndvi_change"),
                    dg.AssetKey("ndvi_change_baseline"), dg.AssetKey("ndvi_trend")],
              automation_condition=AFTER_ANY_YEAR,
              description="{area}/latest/: the latest layer (GeoJSON), classification breaks, a PNG map and the "
                          "interactive web map (ndvi_map.html); also "
                          "re-writes every yearly GeoJSON whose statistics changed (after a re-districting).")
    def latest_exports(context: dg.AssetExecutionContext, postgis: PostGISResource) -> dg.MaterializeResult:
        area = config.area(context.partition_key)
        with postgis.connect() as conn:
            inputs = pipeline.read_latest_inputs(conn, area.code)
        # closed before the breaks, maps and files are computed: no transaction waits on Python meanwhile
        latest = pipeline.write_latest(inputs, area)
        context.log.info("%s: wrote %s, %s", area.code, latest.geojson, latest.breaks_path)
        return dg.MaterializeResult(metadata={
            "latest": dg.MetadataValue.path(str(latest.geojson)),
            "breaks": dg.MetadataValue.json(latest.breaks),
            "districts": latest.districts,
            "districts_with_values": latest.districts_with_values,
            "map": dg.MetadataValue.md(markdown_image(latest.map_png, "latest mean NDVI")),
            "web_map": dg.MetadataValue.url(latest.web_map.as_uri()),
        })

    return [yearly_exports, latest_exports]
