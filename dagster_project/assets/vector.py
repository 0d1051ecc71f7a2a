"""Per area: ``districts`` (file → raw.districts_staged) and ``aoi_boundary`` (boundary file or union)."""


import hashlib

import dagster as dg

from dagster_project.partitions import area_partitions
from dagster_project.resources import PostGISResource
from ingestion import pipeline
from ingestion.config import PipelineConfig
from ingestion.export.preview import choropleth_png, markdown_image
from ingestion.load.postgis import published_districts_version, stage_districts


def build_input_assets(config: PipelineConfig) -> list[dg.AssetsDefinition]:
    """The area inputs, partitioned by area."""
    partitions = area_partitions(config)

    @dg.asset(group_name="inputs", partitions_def=partitions, kinds={"postgres", "python"},
              description="The area's districts from its vector file, validated and staged in "
                          "raw.districts_staged. The area's next year that loads publishes them to raw.districts "
                          "in the same transaction; dbt then recomputes every year of the area for them.")
    def districts(context: dg.AssetExecutionContext, postgis: PostGISResource) -> dg.MaterializeResult:
        area = config.area(context.partition_key)
        gdf = pipeline.prepare_districts(area)
        with postgis.connect() as conn:
            rows, version = stage_districts(conn, area.code, gdf)
            published = published_districts_version(conn, area.code)
        changed = published != version
        context.log.info("%s: staged %d districts (version %s)%s", area.code, rows, version,
                         "; they replace the published ones with the next year that loads" if changed else
                         ", identical to the published ones")
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": rows,
                "source": area.districts.path,
                "crs": gdf.crs.to_string(),
                "area_km2": round(float(gdf.area.sum()) / 1e6, 3),
                "districts_version": version,
                "differs_from_published": changed,
            },
            # equal content, equal version: re-staging the same districts does not make the years stale
            data_version=dg.DataVersion(version),
        )

    @dg.asset(group_name="inputs", partitions_def=partitions, deps=[districts], kinds={"python"},
              description="The area of interest: the boundary file, or the union of the districts, in the "
                          "working CRS. Sets the area's imagery search and grid.")
    def aoi_boundary(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        area = config.area(context.partition_key)
        aoi = pipeline.build_aoi(area, pipeline.prepare_districts(area))
        aoi["value"] = 1.0
        breaks = {"min": 0.0, "bins": [1.0], "colors": ["#9ecae1"]}
        png = choropleth_png(aoi, "value", breaks, f"{area.code}: area of interest")
        # the composites depend on the AOI's shape only: a districts change that keeps it leaves them current
        version = hashlib.sha256(aoi.geometry.iloc[0].wkb).hexdigest()[:16]
        return dg.MaterializeResult(data_version=dg.DataVersion(version), metadata={
            "path": dg.MetadataValue.path(str(pipeline.aoi_path(area))),
            "area_km2": round(float(aoi.area.sum()) / 1e6, 3),
            "preview": dg.MetadataValue.md(markdown_image(png, "AOI")),
        })

    return [districts, aoi_boundary]
