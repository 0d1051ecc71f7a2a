"""The code location: every asset, job and sensor built by one factory from the config.

``dagster dev`` (workspace.yaml) loads :func:`defs`, which reads ``NDVI_CONFIG`` (default the demo config)
when the code location loads, not at import; tests and ``ndvi-pipeline`` call :func:`build_definitions`
with a config of their own.
"""

from __future__ import annotations

import dagster as dg

from dagster_project.assets.dbt import INPUT_MODELS, LATEST_MODELS, build_dbt_assets
from dagster_project.assets.exports import build_export_assets
from dagster_project.assets.imagery import build_imagery_assets
from dagster_project.assets.scenes import build_scene_assets
from dagster_project.assets.vector import build_input_assets
from dagster_project.dbt_core import DbtCoreResource
from dagster_project.refresh import build_observe_job, build_observe_schedule, build_refresh_sensor
from dagster_project.resources import DBT_PROJECT_DIR, PostGISResource
from ingestion.config import PipelineConfig, load_config

AREA_INPUTS = ("districts", "aoi_boundary", *INPUT_MODELS)
YEARLY = ("ndvi_composite", "raw_ndvi_composites", "stg_ndvi_tiles", "district_tile_masks", "ndvi_stats_yearly",
          "ndvi_stats_yearly_distribution", "yearly_exports")
LATEST = (*LATEST_MODELS, "latest_exports")
#: How often the automation looks for areas with a new year, seconds (Dagster's default is 30): the latest
#: layers follow a UI backfill within this; an evaluation of the latest assets' conditions is cheap.
AUTOMATION_INTERVAL_S = 10


def _selection(names: tuple[str, ...]) -> dg.AssetSelection:
    return dg.AssetSelection.assets(*[dg.AssetKey(n) for n in names])


def build_definitions(config: PipelineConfig) -> dg.Definitions:
    """Assets partitioned by area (inputs, latest) and area × year (imagery, yearly stats and exports), the
    three jobs that run them in one process each, and the sensor that refreshes an area's latest layer after
    any of its years; plus (issue 20) the observed scenes, their job, daily schedule and refresh sensor
    (both stopped by default)."""
    assets = [*build_input_assets(config), *build_imagery_assets(config), *build_dbt_assets(config),
              *build_export_assets(config), *build_scene_assets(config)]
    observe_job = build_observe_job()
    jobs = [
        dg.define_asset_job(
            "area_inputs", selection=_selection(AREA_INPUTS), executor_def=dg.in_process_executor,
            description="Per area: read, validate and stage the districts, write the AOI, refresh the views of the "
                        "districts and statistics settings. "
                        "Run once per area, and again after the districts file changes."),
        dg.define_asset_job(
            "yearly_ndvi", selection=_selection(YEARLY), executor_def=dg.in_process_executor,
            description="Per area and year: composite, load into PostGIS (publishing staged districts), dbt "
                        "tiles and yearly statistics with their tests, the year's GeoJSON. One process per run; "
                        "a backfill runs partitions side by side."),
        dg.define_asset_job(
            "latest_ndvi", selection=_selection(LATEST), executor_def=dg.in_process_executor,
            description="Per area: latest layer, change since the previous year and against the baseline year, "
                        "trends, GeoJSON, breaks and map. Runs "
                        "by itself after any year of the area (sensor latest_after_any_year)."),
        observe_job,
    ]
    sensor = dg.AutomationConditionSensorDefinition(
        "latest_after_any_year", target=_selection(LATEST), default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=AUTOMATION_INTERVAL_S,
        description="Refreshes an area's latest layer and exports after any of its years is materialised.")
    postgis = PostGISResource()
    dbt = DbtCoreResource(project_dir=str(DBT_PROJECT_DIR), postgis=postgis)
    # every run in one process, also the runs of backfills and of the automation (Dagster's implicit asset
    # job): a run's owner (run_health) is that process, and dbt's parse is shared by its steps
    return dg.Definitions(assets=assets, jobs=jobs, sensors=[sensor, build_refresh_sensor(config)],
                          schedules=[build_observe_schedule(observe_job)],
                          resources={"postgis": postgis, "dbt": dbt}, executor=dg.in_process_executor)


@dg.definitions
def defs() -> dg.Definitions:
    """The deployment's definitions, from ``NDVI_CONFIG`` (default the demo config)."""
    return build_definitions(load_config())
