"""The code location loaded by ``dagster dev`` (see workspace.yaml)."""

from __future__ import annotations

import dagster as dg

from dagster_project.assets.dbt import ndvi_dbt_models
from dagster_project.assets.exports import ndvi_exports
from dagster_project.assets.imagery import ndvi_composite, raw_ndvi_composites
from dagster_project.assets.vector import aoi_boundary, districts
from dagster_project.resources import PostGISResource, dbt_resource
from dagster_project.settings import year_partitions

ALL_ASSETS = [districts, aoi_boundary, ndvi_composite, raw_ndvi_composites, ndvi_dbt_models, ndvi_exports]

area_inputs_job = dg.define_asset_job("area_inputs", selection=dg.AssetSelection.assets(districts, aoi_boundary))
yearly_job = dg.define_asset_job(
    "yearly_ndvi", partitions_def=year_partitions,
    selection=dg.AssetSelection.assets(ndvi_composite, raw_ndvi_composites, ndvi_dbt_models, ndvi_exports))

defs = dg.Definitions(
    assets=ALL_ASSETS,
    jobs=[area_inputs_job, yearly_job],
    resources={"postgis": PostGISResource(), "dbt": dbt_resource()},
)
