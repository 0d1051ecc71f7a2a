"""``ndvi_exports``: the year's GeoJSON, the latest GeoJSON, classification breaks and a map."""


import dagster as dg

from dagster_project.resources import PostGISResource
from dagster_project.settings import AREA, year_partitions
from ingestion import pipeline
from ingestion.export.preview import markdown_image


@dg.asset(group_name="exports", partitions_def=year_partitions, kinds={"python", "geojson"},
          deps=[dg.AssetKey("ndvi_stats_yearly"), dg.AssetKey("ndvi_stats_latest")],
          description="zonal_stats_{year}.geojson, latest/ndvi_stats_latest.geojson, latest/breaks.json and a map.")
def ndvi_exports(context: dg.AssetExecutionContext, postgis: PostGISResource) -> dg.MaterializeResult:
    year = int(context.partition_key)
    with postgis.connect() as conn:
        yearly = pipeline.export_year(conn, AREA, year)
        latest = pipeline.export_latest(conn, AREA)
    context.log.info("wrote %s, %s, %s", yearly, latest.geojson, latest.breaks_path)
    return dg.MaterializeResult(metadata={
        "zonal_stats": dg.MetadataValue.path(str(yearly)),
        "latest": dg.MetadataValue.path(str(latest.geojson)),
        "breaks": dg.MetadataValue.json(latest.breaks),
        "districts": latest.districts,
        "districts_with_values": latest.districts_with_values,
        "map": dg.MetadataValue.md(markdown_image(latest.map_png, "latest mean NDVI")),
        "web_map": dg.MetadataValue.url(latest.web_map.as_uri()),
    })
