"""dbt inside the Dagster process (``dagster_project/dbt_core.py``): one parse per process and database, a
build per step from that parse, the database's ``PG*`` variables only while dbt runs, and a failing dbt test
that fails its step and names the test."""

from __future__ import annotations

import json
import os

import dagster as dg
import psycopg
import pytest

from dagster_project.definitions import build_definitions
from dagster_project.resources import DBT_PROJECT_DIR
from ingestion.config import load_config
from tests.pipeline_env import AREA, reset_database, run_pipeline, write_area_config

INVOCATIONS = DBT_PROJECT_DIR / "target" / "dagster"
PG_VARIABLES = ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "PGSSLMODE")


def _folders(prefix: str) -> set[str]:
    return {p.name for p in INVOCATIONS.glob(f"{prefix}-*")} if INVOCATIONS.exists() else set()


@pytest.fixture(scope="module")
def two_years(sample_area, database_url, tmp_path_factory):
    out = tmp_path_factory.mktemp("dbt_core") / "data"
    config = write_area_config(sample_area, out, [2019, 2024])
    reset_database(database_url, out)
    environment = {k: os.environ.get(k) for k in PG_VARIABLES}
    before = {prefix: _folders(prefix) for prefix in ("parse", "dbt_yearly_models", "dbt_area_models")}
    run_pipeline(config, [2019, 2024])
    after = {prefix: _folders(prefix) - before[prefix] for prefix in before}
    return {"config": config, "url": database_url, "environment": environment, "new": after}


@pytest.mark.slow
def test_one_parse_serves_every_dbt_step_of_the_process(two_years):
    new = two_years["new"]
    # area inputs + latest, and one per year; at most one parse (none if this process already parsed this database)
    assert len(new["dbt_area_models"]) == 2 and len(new["dbt_yearly_models"]) == 2
    assert len(new["parse"]) <= 1
    for name in new["dbt_yearly_models"]:
        folder = INVOCATIONS / name
        results = json.loads((folder / "run_results.json").read_text())["results"]
        built = {r["unique_id"].split(".")[-1] for r in results if r["unique_id"].startswith("model.")}
        assert built == {"stg_ndvi_tiles", "district_tile_masks", "ndvi_stats_yearly", "ndvi_stats_yearly_distribution"}
        assert all(r["status"] in ("success", "pass") for r in results), results
        log = (folder / "dbt.log").read_text()
        assert "Partial parsing enabled" not in log and "Unable to do partial parsing" not in log  # no parse


@pytest.mark.slow
def test_the_database_variables_are_set_only_while_dbt_runs(two_years):
    assert {k: os.environ.get(k) for k in PG_VARIABLES} == two_years["environment"]


@pytest.mark.slow
def test_a_failing_dbt_test_fails_its_step_and_names_the_test(two_years):
    with psycopg.connect(two_years["url"], autocommit=True) as conn:
        conn.execute("update analytics.ndvi_stats_yearly set mean_ndvi = max_ndvi + 0.5"
                     " where year = 2024 and district_code = (select min(district_code)"
                     " from analytics.ndvi_stats_yearly where year = 2024)")
    job = build_definitions(load_config(two_years["config"])).resolve_job_def("latest_ndvi")
    try:
        result = job.execute_in_process(partition_key=AREA, instance=dg.DagsterInstance.ephemeral(),
                                        raise_on_error=False)
    finally:
        reset_database(two_years["url"])  # no other test may meet the broken row
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_key == "dbt_area_models"
    message = failure.event_specific_data.error.message
    assert message.splitlines()[0].endswith("dbt build failed: latest_min_le_mean_le_max"), message
    failed = {c.check_name for c in result.get_asset_check_evaluations() if not c.passed}
    assert "latest_min_le_mean_le_max" in failed
    passed = {c.check_name for c in result.get_asset_check_evaluations() if c.passed}
    assert "latest_one_row_per_area_and_district" in passed
