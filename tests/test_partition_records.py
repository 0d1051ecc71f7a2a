"""Dagster's partition records match what dbt rebuilt: after a re-districting, a run of ONE year records every
year of the area that dbt recomputed, each with its own partition's row count, and the UI's staleness shows
them fresh; the step lines count the run's own partition's rows."""

from __future__ import annotations

import dagster as dg
import geopandas as gpd
import psycopg
import pytest
import yaml
from dagster._core.definitions.data_version import StaleStatus
from dagster._utils.test.data_versions import get_stale_status_resolver
from psycopg import sql

from dagster_project.cli import run
from dagster_project.definitions import build_definitions
from ingestion.config import load_config
from tests.pipeline_env import AREA, reset_database, write_area_config

YEARLY_DBT = ("stg_ndvi_tiles", "district_tile_masks", "ndvi_stats_yearly", "ndvi_stats_yearly_distribution")


def _key(year: int) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"area": AREA, "year": str(year)})


def _records(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], int]:
    """(asset, partition) -> dagster/row_count of every materialisation of a run."""
    found = {}
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        count = materialization.metadata.get("dagster/row_count")
        found[(materialization.asset_key.to_user_string(), materialization.partition)] = \
            count.value if count is not None else None
    return found


def _rows(url: str, table: str, year: int | None = None) -> int:
    """Rows of the test area in ``analytics.<table>`` (of ``year`` when given)."""
    relation = sql.Identifier("analytics", table)
    with psycopg.connect(url) as conn:
        if year is None:
            return conn.execute(sql.SQL("select count(*) from {} where area_code = %s").format(relation),
                                (AREA,)).fetchone()[0]
        return conn.execute(sql.SQL("select count(*) from {} where area_code = %s and year = %s").format(relation),
                            (AREA, year)).fetchone()[0]


@pytest.mark.slow
def test_a_redistricting_run_records_every_recomputed_year_with_its_own_rows(sample_area, database_url, tmp_path):
    out = tmp_path / "data"
    config_path = write_area_config(sample_area, out, [2019, 2024])
    reset_database(database_url, out)
    instance = dg.DagsterInstance.ephemeral()
    lines: list[str] = []
    assert all(r.success for r in run(load_config(config_path), instance=instance, echo=lines.append))

    districts = gpd.read_file(sample_area["districts"])
    districts.loc[0, "district_name"] = "Renamed"  # a new districts version: every year is recomputed
    changed = tmp_path / "districts-renamed.gpkg"
    districts.to_file(changed, driver="GPKG")
    raw = yaml.safe_load(config_path.read_text())
    raw["districts"]["path"] = str(changed)
    config_path.write_text(yaml.safe_dump(raw))
    config = load_config(config_path)
    lines.clear()
    results = run(config, years=[2024], instance=instance, echo=lines.append)
    assert all(r.success for r in results)
    yearly = next(r for r in results if r.dagster_run.job_name == "yearly_ndvi")
    records = _records(yearly)

    # dbt rebuilt the statistics of both years (and the area's masks); it did not re-tile 2019
    for year in (2019, 2024):
        for table in ("ndvi_stats_yearly", "ndvi_stats_yearly_distribution"):
            assert records[(table, _key(year))] == _rows(database_url, table, year) == len(districts)
        assert records[("district_tile_masks", _key(year))] == _rows(database_url, "district_tile_masks")
    assert records[("stg_ndvi_tiles", _key(2024))] == _rows(database_url, "stg_ndvi_tiles", 2024)
    assert ("stg_ndvi_tiles", _key(2019)) not in records

    # the step line counts the run's partition only: the four yearly models' rows of 2024
    line = next(x for x in lines if x.startswith("ok") and " dbt_yearly_models " in x)
    own = sum(_rows(database_url, t, 2024) if t != "district_tile_masks" else _rows(database_url, t)
              for t in YEARLY_DBT)
    assert f"rows {own}" in line, line

    # what the UI shows: every recomputed year of the statistics is fresh, none is stale
    resolver = get_stale_status_resolver(instance, list(build_definitions(config).assets))
    for year in (2019, 2024):
        for table in ("ndvi_stats_yearly", "ndvi_stats_yearly_distribution"):
            status = resolver.get_status(dg.AssetKey(table), _key(year))
            assert status == StaleStatus.FRESH, (table, year, resolver.get_stale_causes(dg.AssetKey(table),
                                                                                         _key(year)))
