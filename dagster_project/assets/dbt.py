"""The dbt models as two asset sets by cadence: yearly (area × year) and per area (latest, change).

dbt tests become asset checks with the names and descriptions of the yml files; each result carries the
partition it ran for. dbt runs in the step's process (:mod:`dagster_project.dbt_core`) and gets no ``--vars``:
the incremental models pick up what was loaded since their last run, so one parse serves every partition,
and one ``dbt build`` serves a whole batch of partitions (a key range, :mod:`dagster_project.partitions`).
"""


from collections.abc import Iterator, Mapping
from graphlib import TopologicalSorter
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, dbt_assets

from dagster_project.dbt_core import DbtCoreResource
from dagster_project.dbt_manifest import prepare_manifest
from dagster_project.partitions import (
    AREA,
    BATCH_POLICY,
    area_partitions,
    area_year_partitions,
    batch_label,
    split_key,
)
from dagster_project.refresh import forced
from dagster_project.resources import PostGISResource, dbt_project
from ingestion import area_builds
from ingestion.config import PipelineConfig
from ingestion.export.breaks import import_in_background
from ingestion.load.settings import write_area_settings
from ingestion.updates import area_years_needing_dbt

YEARLY_MODELS = "stg_ndvi_tiles district_tile_masks ndvi_stats_yearly ndvi_stats_yearly_distribution"
AREA_MODELS = ("stg_districts stg_green_share_thresholds stg_change_baselines ndvi_stats_newest_valid_year "
               "ndvi_stats_latest ndvi_change ndvi_green_share_yearly ndvi_indicators_yearly ndvi_change_baseline "
               "ndvi_trend")
#: The per-area views of the area's inputs (districts, statistics settings): built with the area's inputs, so
#: that they exist before any latest model reads them (their parents are sources, which no automation sees
#: change: requested only after a year, a fresh deployment's first latest run would miss them).
INPUT_MODELS = ("stg_districts", "stg_green_share_thresholds", "stg_change_baselines")
#: The per-area models that follow any year of their area (declarative automation).
LATEST_MODELS = ("ndvi_stats_newest_valid_year",
                 "ndvi_stats_latest", "ndvi_change", "ndvi_green_share_yearly", "ndvi_indicators_yearly",
                 "ndvi_change_baseline", "ndvi_trend")
#: The yearly (area × year) models a per-area model reads every year of.
YEARLY_PARENTS = ("ndvi_stats_yearly", "ndvi_stats_yearly_distribution")

#: After any year of the area is materialised: unlike `eager`, it does not wait until every year exists,
#: and a missing latest layer alone (a new deployment with no year yet) requests nothing. The area's inputs
#: (the input views are parents of some latest models) are ignored: refreshing them requests nothing, so an
#: area whose inputs were just built, with no year yet, gets no latest run (it would fail on missing tables).
AFTER_ANY_YEAR = (
    dg.AutomationCondition.any_deps_updated().ignore(dg.AssetSelection.assets(*INPUT_MODELS)).since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("after any year of the area")
#: The same, for a per-area asset whose parents are per-area assets (the latest models above it, which the
#: automation builds too): it also waits until each parent exists or is requested in the same tick. Evaluated
#: while one year's run was still in progress, the automation once requested latest_exports with some of its
#: parents but not ndvi_change_baseline, which a fresh deployment did not have yet: the run failed on the
#: missing view, and the next two ticks (30 s each) rebuilt the views and the export.
AFTER_ANY_YEAR_AND_PARENTS = (AFTER_ANY_YEAR & ~dg.AutomationCondition.any_deps_missing()).with_label(
    "after any year of the area, every parent there")


class NdviDbtTranslator(DagsterDbtTranslator):
    """Model names as asset keys (sources map to the Python assets through ``meta.dagster`` in
    ``__sources.yml``), one group, the latest models refreshed after any year of their area."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "model":
            return dg.AssetKey(dbt_resource_props["name"])
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return "analytics"

    def get_automation_condition(self, dbt_resource_props: Mapping[str, Any]) -> dg.AutomationCondition | None:
        if dbt_resource_props["name"] not in LATEST_MODELS:
            return None
        parents = {node.rsplit(".", 1)[-1] for node in dbt_resource_props.get("depends_on", {}).get("nodes", [])}
        # a parent per area and year would be "missing" until every year of the area exists: not waited for
        return AFTER_ANY_YEAR if parents & set(YEARLY_PARENTS) else AFTER_ANY_YEAR_AND_PARENTS

    def get_partition_mapping(self, dbt_resource_props: Mapping[str, Any],
                              dbt_parent_resource_props: Mapping[str, Any]) -> dg.PartitionMapping | None:
        # a per-area model reads every year of its area
        if dbt_parent_resource_props.get("name") in YEARLY_PARENTS:
            return dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name=AREA)
        return None


TRANSLATOR = NdviDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


def _areas(context: dg.AssetExecutionContext) -> list[str]:
    """The areas of the step's partitions, in order (none when the step is not partitioned)."""
    if not (context.has_partition_key or context.has_partition_key_range):
        return []
    return list(dict.fromkeys(split_key(key)[0] for key in context.partition_keys))


def _write_settings(context: dg.AssetExecutionContext, config: PipelineConfig, postgis: PostGISResource) -> None:
    """The partition's area statistics settings (green-share thresholds, baseline year) into raw.*, where the
    models read them: a config change applies at the next dbt step of the area, with no dbt var (no re-parse)."""
    with postgis.connect() as conn:
        for code in _areas(context):
            if write_area_settings(conn, config.area(code)):
                context.log.info(f"{code}: statistics settings written (green-share thresholds, baseline year)")


def _skipped(context: dg.AssetExecutionContext, reason: str) -> Iterator[dg.MaterializeResult]:
    """No dbt build: each selected model records a materialisation that says nothing changed (``skipped``), so
    that the step's downstream exports still run (and restore a deleted file)."""
    context.log.info(f"{batch_label(context)}: {reason}; dbt skipped")
    selected = context.selected_asset_keys
    graph = {key: context.assets_def.asset_deps.get(key, set()) & selected for key in selected}
    for key in TopologicalSorter(graph).static_order():  # a multi-asset yields parents first
        yield dg.MaterializeResult(asset_key=key, metadata={"skipped": True, "reason": reason})


def _build_yearly(context: dg.AssetExecutionContext, dbt: DbtCoreResource, postgis: PostGISResource,
                  config: PipelineConfig) -> Iterator[Any]:
    """``dbt build`` of the yearly models, unless no area-year of the batch was loaded, re-districted or
    re-thresholded since they were built (:func:`ingestion.updates.area_years_needing_dbt`) and the run is not
    forced: the incremental models would find nothing to do."""
    _write_settings(context, config, postgis)
    if not forced(context):
        with postgis.connect() as conn:
            stale = area_years_needing_dbt(conn, [split_key(key) for key in context.partition_keys])
        if not stale:
            yield from _skipped(context, "no area-year loaded or re-districted since the models were built")
            return
    # the latest exports that follow classify (in this process, when ndvi-pipeline runs them): mapclassify's
    # import compiles its numba kernels, about 2.5 s of one core, taken here while this process waits for
    # PostgreSQL rather than beside a step that needs the interpreter (measured on 96 areas: at the run's start
    # it delayed the area inputs by as much as it saved at the end)
    import_in_background()
    yield from dbt.build(context, exclude=("test_type:unit",))


def _build_area(context: dg.AssetExecutionContext, dbt: DbtCoreResource, postgis: PostGISResource,
                config: PipelineConfig) -> Iterator[Any]:
    """``dbt build`` of the selected per-area models, unless every area of the batch has them built from the
    same years, districts, settings and model code (:mod:`ingestion.area_builds`) and the run is not forced.
    A successful build is recorded for the batch's areas; a failed one leaves none (the next step builds)."""
    _write_settings(context, config, postgis)
    areas = _areas(context)
    code = {key.path[-1]: context.assets_def.code_versions_by_key.get(key) for key in context.selected_asset_keys}
    with postgis.connect() as conn:
        needing, stamps = area_builds.needing_build(conn, areas, code)
        skip = bool(areas) and not needing and not forced(context)
        if areas and not skip:
            area_builds.forget_builds(conn, areas, code)  # committed as the block ends, before dbt starts
    if skip:
        yield from _skipped(context, "years, districts, settings and model code unchanged since the last build")
        return
    # unit tests are the developers' (tests/test_pipeline.py runs them): they need the tables to exist
    yield from dbt.build(context, exclude=("test_type:unit",))
    if areas:
        with postgis.connect() as conn:
            area_builds.record_build(conn, areas, stamps, code)


def build_dbt_assets(config: PipelineConfig) -> list[dg.AssetsDefinition]:
    """The yearly dbt models (area × year) and the per-area ones (area), from a manifest prepared now when
    it is missing or stale (:mod:`dagster_project.dbt_manifest`)."""
    prepare_manifest(dbt_project)

    @dbt_assets(manifest=dbt_project.manifest_path, project=dbt_project, select=YEARLY_MODELS,
                dagster_dbt_translator=TRANSLATOR, partitions_def=area_year_partitions(config),
                name="dbt_yearly_models", pool="dbt", backfill_policy=BATCH_POLICY)
    def dbt_yearly_models(context: dg.AssetExecutionContext, dbt: DbtCoreResource, postgis: PostGISResource):
        yield from _build_yearly(context, dbt, postgis, config)

    @dbt_assets(manifest=dbt_project.manifest_path, project=dbt_project, select=AREA_MODELS,
                dagster_dbt_translator=TRANSLATOR, partitions_def=area_partitions(config),
                name="dbt_area_models", pool="dbt", backfill_policy=BATCH_POLICY)
    def dbt_area_models(context: dg.AssetExecutionContext, dbt: DbtCoreResource, postgis: PostGISResource):
        yield from _build_area(context, dbt, postgis, config)

    return [dbt_yearly_models, dbt_area_models]
