"""``sentinel2_scenes``: the scenes of every area-year as an observable source asset (issue 20).

Its data version per area × year partition is the scenes version of :mod:`ingestion.observe` (the items the
composite's search selects, their ``updated`` time and the offset their metadata claims). ``ndvi_composite``
depends on it, so after an observation in which Earth Search added or reprocessed a scene, exactly that
area-year's composite (and what is downstream of it) shows as stale in the UI.

An observation of the whole asset (the job ``observe_scenes``, its daily schedule, ``ndvi-pipeline observe``)
observes every area-year in one call: one search per area-year in a bounded thread pool, one walk of a
``local-stac`` catalog. A run for some partitions observes only those.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence

import dagster as dg
from dagster._core.definitions.data_version import DATA_VERSION_TAG

from dagster_project.partitions import AREA, YEAR, area_year_key, area_year_partitions
from ingestion.config import AreaConfig, PipelineConfig
from ingestion.observe import ObservedScenes, observe, record_observations

SCENES_KEY = dg.AssetKey("sentinel2_scenes")


def observation_event(o: ObservedScenes) -> dg.AssetObservation:
    """The observation of one area-year as a Dagster event: data version = scenes version, with the count of
    kept items and whether the version changed since the previous observation."""
    return dg.AssetObservation(
        asset_key=SCENES_KEY, partition=str(area_year_key(o.area, o.year)), tags={DATA_VERSION_TAG: o.version},
        metadata={"scenes_version": o.version, "items": o.items,
                  "changed": "first observation" if o.changed is None else ("yes" if o.changed else "no")})


def observe_and_record(config: PipelineConfig, areas: Iterable[str] | None = None,
                       years: Iterable[int] | None = None) -> list[ObservedScenes]:
    """Observe the area-years (default all), record them under each area's output folder and return them
    (with ``changed``); failures are in the results' ``error``."""
    selected: Sequence[AreaConfig] = [config.area(a) for a in areas] if areas else list(config.areas)
    return record_observations(selected, observe(selected, years))


def build_scene_assets(config: PipelineConfig) -> list[dg.SourceAsset]:
    """The observable source asset ``sentinel2_scenes``, partitioned like the yearly assets."""

    partitions = area_year_partitions(config)
    # observable source assets and DataVersionsByPartition are beta in Dagster 1.13: said once here, not per load
    warnings.filterwarnings("ignore", message=".*observable_source_asset.*", category=dg.BetaWarning)
    warnings.filterwarnings("ignore", message=".*DataVersionsByPartition.*", category=dg.BetaWarning)

    @dg.observable_source_asset(
        key=SCENES_KEY, group_name="imagery", partitions_def=partitions,
        description="The Sentinel-2 items the composite's search selects per area and year. Data version: a hash "
                    "of their ids, updated times and the offset their metadata claims (no pixels are read). "
                    "Observed by the job observe_scenes (schedule observe_scenes_daily) or ndvi-pipeline observe.")
    def sentinel2_scenes(context: dg.OpExecutionContext) -> dg.DataVersionsByPartition:
        areas = years = None
        if context.has_partition_key or context.has_partition_key_range:
            keys = [partitions.get_partition_key_from_str(str(k)) for k in context.partition_keys]
            areas = sorted({k.keys_by_dimension[AREA] for k in keys})
            years = sorted({int(k.keys_by_dimension[YEAR]) for k in keys})
        observed = observe_and_record(config, areas, years)
        # logged here rather than returned, so that each carries its item count and whether it changed
        for o in observed:
            if o.version is not None:
                context.log_event(observation_event(o))
        failed = [o for o in observed if o.error]
        if failed:
            raise dg.Failure(description=f"{len(failed)} of {len(observed)} area-years not observed: "
                             + "; ".join(f"{o.area} {o.year}: {o.error}" for o in failed[:10]))
        context.log.info(f"observed {len(observed)} area-years, "
                         f"{sum(bool(o.changed) for o in observed)} changed since the previous observation")
        return dg.DataVersionsByPartition({})

    return [sentinel2_scenes]
