"""The dbt models as assets. dbt tests become asset checks; sources map onto the Python assets."""


import json
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from dagster_project.resources import PostGISResource, dbt_lock, dbt_project, point_dbt_at
from dagster_project.settings import year_partitions

#: dbt source table -> the Python asset that loads it.
SOURCE_ASSETS = {"districts": dg.AssetKey("districts"), "ndvi_composites": dg.AssetKey("raw_ndvi_composites")}


class NdviDbtTranslator(DagsterDbtTranslator):
    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source" and dbt_resource_props["name"] in SOURCE_ASSETS:
            return SOURCE_ASSETS[dbt_resource_props["name"]]
        if dbt_resource_props["resource_type"] == "model":
            return dg.AssetKey(dbt_resource_props["name"])  # the model name, as the exports refer to it
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return "analytics"


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=NdviDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True)),
    partitions_def=year_partitions,
    pool="dbt",  # one dbt run at a time against the shared database
)
def ndvi_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, postgis: PostGISResource):
    point_dbt_at(postgis)
    args = ["build"]
    if context.has_partition_key:
        args += ["--vars", json.dumps({"year": int(context.partition_key)})]
    with dbt_lock(postgis):
        yield from dbt.cli(args, context=context).stream()
