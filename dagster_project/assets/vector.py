"""``districts`` (file → raw.districts) and ``aoi_boundary`` (boundary file or union of districts)."""


import dagster as dg

from dagster_project.resources import PostGISResource
from dagster_project.settings import AREA
from ingestion import pipeline
from ingestion.export.preview import choropleth_png, markdown_image
from ingestion.load.postgis import load_districts


@dg.asset(group_name="inputs", kinds={"postgres", "python"},
          description="Districts from the configured vector file, validated and loaded into raw.districts.")
def districts(context: dg.AssetExecutionContext, postgis: PostGISResource) -> dg.MaterializeResult:
    gdf = pipeline.prepare_districts(AREA)
    with postgis.connect() as conn:
        rows = load_districts(conn, gdf)
    context.log.info("loaded %d districts into raw.districts", rows)
    return dg.MaterializeResult(metadata={
        "row_count": rows,
        "source": AREA.districts.path,
        "crs": gdf.crs.to_string(),
        "area_km2": round(float(gdf.area.sum()) / 1e6, 3),
    })


@dg.asset(group_name="inputs", deps=[districts], kinds={"python"},
          description="Area of interest: the boundary file, or the union of the districts, in the working CRS.")
def aoi_boundary(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    gdf = pipeline.prepare_districts(AREA)
    aoi = pipeline.build_aoi(AREA, gdf)
    aoi["value"] = 1.0
    breaks = {"min": 0.0, "bins": [1.0], "colors": ["#9ecae1"]}
    png = choropleth_png(aoi, "value", breaks, f"{AREA.name}: area of interest")
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(str(pipeline.aoi_path(AREA))),
        "area_km2": round(float(aoi.area.sum()) / 1e6, 3),
        "preview": dg.MetadataValue.md(markdown_image(png, "AOI")),
    })
