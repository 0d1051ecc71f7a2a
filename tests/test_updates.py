"""No-op re-runs (issue 20): unchanged inputs skip the composite and the load, ``force`` redoes them, a new
scene recomputes exactly its area-year, and the dbt step can tell that nothing changed."""

from __future__ import annotations

import dagster as dg
import pytest

from dagster_project.cli import run
from ingestion.load.postgis import stage_districts
from ingestion.pipeline import composite_path, composite_year, prepare_districts
from ingestion.updates import area_years_needing_dbt, load_composite_if_changed, sidecar_path
from tests.pipeline_env import reset_database
from tests.update_env import add_scene, two_areas


@pytest.fixture
def areas(sample_area, tmp_path, database_url):
    reset_database(database_url)
    return two_areas(sample_area, tmp_path)


def _loaded_at(db) -> dict[tuple[str, int], object]:
    return {(a, y): t for a, y, t in db.execute(
        "select area_code, year, max(loaded_at) from raw.ndvi_composites group by 1, 2").fetchall()}


def _pass(db, config, force: set = frozenset()) -> dict[tuple[str, int], tuple[bool, bool]]:
    """Composite and load every area-year; per area-year (composite skipped, load skipped)."""
    out = {}
    for area in config.areas:
        for year in area.years:
            forced = (area.code, year) in force
            result = composite_year(area, year, force=forced)
            loaded = load_composite_if_changed(db, area.code, year, result.path, force=forced)
            assert loaded.tiles > 0 and loaded.inputs_version == result.inputs_version
            out[area.code, year] = (result.skipped, loaded.skipped)
    return out


def _mtimes(config) -> dict[tuple[str, int], int]:
    return {(a.code, y): composite_path(a, y).stat().st_mtime_ns for a in config.areas for y in a.years}


def test_unchanged_inputs_skip_force_redoes_and_a_new_scene_recomputes_only_its_area_year(db, areas):
    for area in areas.areas:
        stage_districts(db, area.code, prepare_districts(area))
    keys = {(a.code, y) for a in areas.areas for y in a.years}
    assert _pass(db, areas) == dict.fromkeys(keys, (False, False))
    mtimes, loaded = _mtimes(areas), _loaded_at(db)

    second = composite_year(areas.area("east"), 2019)
    assert second.skipped and second.composite.stats.valid_pixels > 0 and second.selection.items
    assert _pass(db, areas) == dict.fromkeys(keys, (True, True))
    assert _mtimes(areas) == mtimes and _loaded_at(db) == loaded

    assert _pass(db, areas, force={("east", 2019)}) == {k: (k != ("east", 2019),) * 2 for k in keys}
    changed = {k for k in keys if _mtimes(areas)[k] != mtimes[k] or _loaded_at(db)[k] != loaded[k]}
    assert changed == {("east", 2019)}
    mtimes, loaded = _mtimes(areas), _loaded_at(db)

    add_scene(areas, areas.area("west"), 2024)
    assert _pass(db, areas) == {k: (k != ("west", 2024),) * 2 for k in keys}
    changed = {k for k in keys if _mtimes(areas)[k] != mtimes[k] or _loaded_at(db)[k] != loaded[k]}
    assert changed == {("west", 2024)}

    # a COG replaced behind the pipeline's back is never taken for the recorded one
    path = composite_path(areas.area("west"), 2019)
    path.write_bytes(path.read_bytes())
    assert not composite_year(areas.area("west"), 2019).skipped
    assert sidecar_path(path).exists()


def _skipped(materialisations: dict[str, dg.MetadataValue], asset: str) -> bool:
    value = materialisations[asset].get("skipped")
    return bool(value and value.value)


def test_a_second_headless_run_skips_every_step_and_restores_a_deleted_file(db, areas):
    instance = dg.DagsterInstance.ephemeral()
    dbt_models = ("stg_districts", "ndvi_stats_yearly", "ndvi_stats_yearly_distribution", "ndvi_stats_latest",
                  "ndvi_trend")

    def materialise(force: bool = False) -> dict[str, dg.MetadataValue]:
        results = run(areas, areas=["east"], years=[2024], instance=instance, echo=lambda line: None, force=force)
        assert all(r.success for r in results)
        return {e.event_specific_data.materialization.asset_key.to_user_string():
                e.event_specific_data.materialization.metadata
                for r in results for e in r.get_asset_materialization_events()}

    first = materialise()
    assert first["ndvi_composite"]["skipped"].value is False
    assert not any(_skipped(first, model) for model in dbt_models)
    assert area_years_needing_dbt(db, [("east", 2024), ("west", 2024)]) == []
    mtime, loaded = composite_path(areas.area("east"), 2024).stat().st_mtime_ns, _loaded_at(db)
    latest = _latest_updated_at(db)
    yearly_geojson = areas.area("east").area_dir / "2024" / "stats" / "zonal_stats_2024.geojson"
    yearly_geojson.unlink()

    second = materialise()
    assert second["ndvi_composite"]["skipped"].value is True and second["raw_ndvi_composites"]["skipped"].value
    assert all(_skipped(second, model) for model in dbt_models)
    assert second["ndvi_composite"]["valid_fraction"] == first["ndvi_composite"]["valid_fraction"]
    assert composite_path(areas.area("east"), 2024).stat().st_mtime_ns == mtime and _loaded_at(db) == loaded
    assert yearly_geojson.exists() and "yearly_exports" in second and "latest_exports" in second
    assert _latest_updated_at(db) == latest

    # a reload that dbt has not built yet is what the dbt steps must not skip
    load_composite_if_changed(db, "east", 2024, composite_path(areas.area("east"), 2024), force=True)
    assert area_years_needing_dbt(db, [("east", 2024)]) == [("east", 2024)]
    third = materialise()
    assert third["raw_ndvi_composites"]["skipped"].value is True
    assert not _skipped(third, "ndvi_stats_yearly") and not _skipped(third, "ndvi_stats_latest")
    assert area_years_needing_dbt(db, [("east", 2024)]) == []

    forced = materialise(force=True)
    assert forced["ndvi_composite"]["skipped"].value is False
    assert forced["raw_ndvi_composites"]["skipped"].value is False
    assert not any(_skipped(forced, model) for model in dbt_models)
    assert composite_path(areas.area("east"), 2024).stat().st_mtime_ns != mtime
    assert area_years_needing_dbt(db, [("east", 2024)]) == []


def _latest_updated_at(db) -> list[tuple]:
    return db.execute("select district_code, updated_at from analytics.ndvi_stats_latest order by 1").fetchall()
