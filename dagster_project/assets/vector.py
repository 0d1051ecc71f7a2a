"""``districts`` (file → raw.districts_staged) and ``aoi_boundary`` (boundary file or union of districts)."""


import hashlib

import dagster as dg

from dagster_project.resources import PostGISResource
from dagster_project.settings import AREA
from ingestion import pipeline
from ingestion.export.preview import choropleth_png, markdown_image
from ingestion.load.postgis import published_districts_version, stage_districts


@dg.asset(group_name="inputs", kinds={"postgres", "python"},
          description="Districts from the configured vector file, validated and staged in raw.districts_staged. "
                      "The next year that loads publishes them to raw.districts in the same transaction; dbt then "
                      "recomputes every year for them.")
def districts(context: dg.AssetExecutionContext, postgis: PostGISResource) -> dg.MaterializeResult:
    gdf = pipeline.prepare_districts(AREA)
    with postgis.connect() as conn:
        rows, version = stage_districts(conn, gdf)
        published = published_districts_version(conn)
    changed = published != version
    context.log.info("staged %d districts (version %s)%s", rows, version,
                     "; they replace the published ones with the next year that loads" if changed else
                     ", identical to the published ones")
    return dg.MaterializeResult(
        metadata={
            "row_count": rows,
            "source": AREA.districts.path,
            "crs": gdf.crs.to_string(),
            "area_km2": round(float(gdf.area.sum()) / 1e6, 3),
            "districts_version": version,
            "differs_from_published": changed,
        },
        # equal content, equal version: re-staging the same districts does not make the years stale
        data_version=dg.DataVersion(version),
    )


@dg.asset(group_name="inputs", deps=[districts], kinds={"python"},
          description="Area of interest: the boundary file, or the union of the districts, in the working CRS.")
def aoi_boundary(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    gdf = pipeline.prepare_districts(AREA)
    aoi = pipeline.build_aoi(AREA, gdf)
    aoi["value"] = 1.0
    breaks = {"min": 0.0, "bins": [1.0], "colors": ["#9ecae1"]}
    png = choropleth_png(aoi, "value", breaks, f"{AREA.name}: area of interest")
    # the composites depend on the AOI's shape only: a districts change that keeps it leaves them current
    version = hashlib.sha256(aoi.geometry.iloc[0].wkb).hexdigest()[:16]
    return dg.MaterializeResult(data_version=dg.DataVersion(version), metadata={
        "path": dg.MetadataValue.path(str(pipeline.aoi_path(AREA))),
        "area_km2": round(float(aoi.area.sum()) / 1e6, 3),
        "preview": dg.MetadataValue.md(markdown_image(png, "AOI")),
    })
