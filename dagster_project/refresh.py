"""Update pipeline wiring (issue 20): the ``observe_scenes`` job and its daily schedule, the ``--force`` run
tag, and the sensor that re-materialises exactly the area-years an observation made stale. Both the schedule
and the sensor are stopped by default: a deployment turns them on in the UI (Automation) when it wants
automatic refreshes.
"""

from __future__ import annotations

import dagster as dg

from dagster_project.assets.scenes import SCENES_KEY
from dagster_project.partitions import area_year_key
from ingestion.config import PipelineConfig
from ingestion.updates import stale_area_years

#: Run tag read by ``ndvi_composite`` and ``raw_ndvi_composites``: ``"true"`` recomputes and reloads even when
#: the inputs version is unchanged (``ndvi-pipeline run --force``).
FORCE_TAG = "ndvi/force"
OBSERVE_JOB = "observe_scenes"
REFRESH_JOB = "yearly_ndvi"
#: The daily observation, 06:00 UTC by default (Earth Search ingests through the night, Europe time).
DAILY_CRON = "0 6 * * *"


def forced(context: dg.AssetExecutionContext) -> bool:
    """Whether the run carries ``FORCE_TAG=true``."""
    return context.run.tags.get(FORCE_TAG, "").lower() == "true"


def build_observe_job() -> dg.UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        OBSERVE_JOB, selection=dg.AssetSelection.assets(SCENES_KEY), executor_def=dg.in_process_executor,
        description="Observe the Sentinel-2 scenes of every area-year (one search each, no pixels): area-years "
                    "whose scenes changed show their composite as stale.")


def build_observe_schedule(job: dg.UnresolvedAssetJobDefinition) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name="observe_scenes_daily", job=job, cron_schedule=DAILY_CRON, execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Observes every area-year's scenes once a day (stopped by default).")


def observed_versions(instance: dg.DagsterInstance, config: PipelineConfig) -> dict[tuple[str, int], str]:
    """The latest observed scenes version of every area-year that has one, from the instance."""
    out = {}
    for area in config.areas:
        for year in area.years:
            record = instance.get_latest_data_version_record(SCENES_KEY, is_source=True,
                                                             partition_key=str(area_year_key(area.code, year)))
            version = record.asset_observation.data_version if record and record.asset_observation else None
            if version:
                out[area.code, year] = version
    return out


def refresh_requests(instance: dg.DagsterInstance, config: PipelineConfig) -> list[dg.RunRequest]:
    """One ``yearly_ndvi`` run request per stale area-year (:func:`ingestion.updates.stale_area_years`); its
    run key names the inputs version it brings the composite to, so a version is requested once."""
    return [dg.RunRequest(run_key=f"{area}|{year}|{version}", partition_key=str(area_year_key(area, year)),
                          tags={"ndvi/refresh": "stale scenes"})
            for area, year, version in stale_area_years(config.areas, observed_versions(instance, config))]


def build_refresh_sensor(config: PipelineConfig) -> dg.SensorDefinition:
    """``refresh_stale_years`` (stopped by default): after each new observation of ``sentinel2_scenes``,
    requests ``yearly_ndvi`` for exactly the area-years whose composite inputs version differs from what the
    observed scenes give, and nothing else; ``latest_after_any_year`` then refreshes their latest layers."""
    @dg.sensor(name="refresh_stale_years", job_name=REFRESH_JOB, minimum_interval_seconds=60,
               default_status=dg.DefaultSensorStatus.STOPPED,
               description="After an observation of sentinel2_scenes, materialises yearly_ndvi for exactly the "
                           "area-years whose scenes (or pixel config) changed since their composite.")
    def refresh_stale_years(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        latest = context.instance.event_log_storage.get_latest_storage_id_by_partition(
            SCENES_KEY, dg.DagsterEventType.ASSET_OBSERVATION)
        newest = max(latest.values(), default=0)
        if newest <= int(context.cursor or 0):
            return dg.SkipReason("no observation of sentinel2_scenes since the last evaluation")
        return dg.SensorResult(run_requests=refresh_requests(context.instance, config), cursor=str(newest))

    return refresh_stale_years
