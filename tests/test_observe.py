"""Observing scenes (issue 20): one catalog walk per observation, a version that changes exactly for the
area-year that gained a scene, and the same thing through the CLI, the Dagster job and the refresh sensor."""

from __future__ import annotations

import dagster as dg
import pytest
from dagster._core.definitions.data_version import StaleStatus

from dagster_project.cli import QUIET
from dagster_project.definitions import build_definitions
from dagster_project.observe_cli import observe_command
from dagster_project.partitions import area_year_key
from dagster_project.refresh import refresh_requests
from ingestion.observe import observe
from ingestion.pipeline import read_aoi
from ingestion.scenes import select_scenes
from tests.update_env import add_scene, counting_opens, two_areas


@pytest.fixture
def areas(sample_area, tmp_path):
    return two_areas(sample_area, tmp_path)


def _stale(instance: dg.DagsterInstance, defs: dg.Definitions) -> set[str]:
    """The partitions of ``ndvi_composite`` that Dagster's own stale-status resolver (the UI's) calls stale."""
    from dagster._utils.test.data_versions import get_stale_status_resolver

    resolver = get_stale_status_resolver(instance, list(defs.assets))
    key = dg.AssetKey("ndvi_composite")
    keys = defs.resolve_assets_def(key).partitions_def.get_partition_keys()
    return {k for k in keys if resolver.get_status(key, k) == StaleStatus.STALE}


def _versions(config) -> dict[tuple[str, int], str]:
    return {(o.area, o.year): o.version for o in observe(config.areas)}


def test_a_new_scene_changes_exactly_its_area_year_and_the_catalog_is_walked_once(areas):
    with counting_opens("catalog.json") as opened:
        before = observe(areas.areas)
    assert len(opened) == 2, opened  # 2 areas x 2 years, one walk: parsed once, digested once (local-stac)
    assert all(o.version and o.items > 0 and o.error is None for o in before), before
    west = areas.area("west")
    # the observation's version is the one the composite's own search gives
    aoi, crs = read_aoi(west)
    from ingestion.observe import scenes_version
    assert scenes_version(select_scenes(west, 2024, aoi, crs)) == next(
        o.version for o in before if (o.area, o.year) == ("west", 2024))

    add_scene(areas, west, 2024)
    after = _versions(areas)
    changed = {key for key, version in after.items() if version != {(o.area, o.year): o.version for o in before}[key]}
    assert changed == {("west", 2024)}


def test_cli_dagster_job_and_refresh_sensor_see_the_same_change(areas, tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    lines: list[str] = []
    assert observe_command(areas, instance=instance, echo=lines.append) == 0
    assert len(lines) == 4 and all("first observation" in line for line in lines), lines
    # no composite yet: nothing is stale, nothing requested
    assert refresh_requests(instance, areas) == []

    # composites of every area-year, materialised after that observation: nothing stale, nothing requested
    defs = build_definitions(areas)
    for area in areas.areas:
        for year in area.years:
            assert defs.resolve_job_def("yearly_ndvi").execute_in_process(
                partition_key=area_year_key(area.code, year), instance=instance, run_config=QUIET,
                asset_selection=[dg.AssetKey("ndvi_composite")]).success
    assert refresh_requests(instance, areas) == []
    assert _stale(instance, defs) == set()

    add_scene(areas, areas.area("west"), 2024)
    result = defs.resolve_job_def("observe_scenes").execute_in_process(instance=instance)
    assert result.success
    versions = {e.event_specific_data.asset_observation.partition:
                e.event_specific_data.asset_observation.metadata["changed"].value
                for e in result.all_events if e.event_type_value == "ASSET_OBSERVATION"}
    assert versions == {str(area_year_key(a, y)): "yes" if (a, y) == ("west", 2024) else "no"
                        for a in ("west", "east") for y in (2019, 2024)}
    requests = refresh_requests(instance, areas)
    assert [r.partition_key for r in requests] == [str(area_year_key("west", 2024))]
    assert _stale(instance, defs) == {str(area_year_key("west", 2024))}  # what the UI marks stale
    sensor = defs.resolve_sensor_def("refresh_stale_years")
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    tick = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs))
    assert [r.partition_key for r in tick.run_requests] == [str(area_year_key("west", 2024))]
    again = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs, cursor=tick.cursor))
    assert not again.run_requests  # nothing new observed since

    lines.clear()
    assert observe_command(areas, instance=instance, echo=lines.append) == 0
    assert all("unchanged" in line for line in lines), lines
