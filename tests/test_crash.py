"""A crashed run never wedges the pipeline: ``kill -9`` during the composite and during dbt, then a re-run that
finishes; a run waiting for a slot says for whom and stops on SIGTERM. Real processes, a real instance."""

from __future__ import annotations

import os
import signal

import psycopg
import pytest

from ingestion.db.dbt_lock import DBT_LOCK_KEY
from tests.crash_env import (
    HangingStacApi,
    PipelineProcess,
    area_config,
    cli_env,
    dagster_home,
    failure_messages,
    run_status,
    slot_holders,
    wait_for,
)
from tests.pipeline_env import reset_database

STEPS_OF_A_YEAR = ("ndvi_composite", "raw_ndvi_composites", "dbt_yearly_models", "yearly_exports")


def _year_rows(database_url: str, area: str, year: int) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute("select count(*) from analytics.ndvi_stats_yearly where area_code = %s and year = %s",
                            (area, year)).fetchone()[0]


def _assert_year_done(proc: PipelineProcess, database_url: str, out, area: str, year: int,
                      districts: int = 8) -> None:
    """Every step of the year ran ok, and its statistics (one row per sample district) and GeoJSON exist."""
    for step in STEPS_OF_A_YEAR:
        assert any(line.startswith("ok") and f" {step} " in line for line in proc.lines), proc.output
    assert not any(line.startswith("FAILED") for line in proc.lines), proc.output
    assert _year_rows(database_url, area, year) == districts
    assert (out / area / str(year) / "stats" / f"zonal_stats_{year}.geojson").exists()


@pytest.mark.slow
def test_kill_during_composite_then_a_waiting_run_names_the_holder_stops_on_sigterm_and_a_rerun_finishes(
        sample_area, database_url, tmp_path):
    out = tmp_path / "data"
    reset_database(database_url, out)
    home = dagster_home(tmp_path)
    env = cli_env(home, database_url)
    good = area_config(tmp_path / "good.yaml", sample_area, out, [2019, 2024])
    with HangingStacApi() as hanging:
        stuck = area_config(tmp_path / "stuck.yaml", sample_area, out, [2024], imagery={
            "source": "earth-search", "options": {"url": hanging.url, "timeout_seconds": 3600, "max_retries": 0}})
        victim = PipelineProcess(["run", "--config", str(stuck), "--year", "2024"], env)
        holders = wait_for(lambda: slot_holders(home, "composite") if hanging.requests else None,
                           "the composite to hold its slot and search the STAC API", victim.proc)
        victim_run = holders[0]

        waiter = PipelineProcess(["run", "--config", str(good), "--year", "2019"], env)
        line = waiter.wait_line("waiting for pool 'composite'")
        assert f"held by run {victim_run} (yearly_ndvi crash|2024, step ndvi_composite, pid {victim.proc.pid}" in line
        waiter.proc.send_signal(signal.SIGTERM)
        assert waiter.finish() == 130, waiter.output
        assert "yearly_ndvi crash 2019 interrupted (SIGINT or SIGTERM)" in waiter.output

        os.kill(victim.proc.pid, signal.SIGKILL)
        assert victim.finish() == -signal.SIGKILL
    # what a killed run leaves behind: a STARTED run that holds the slot
    assert slot_holders(home, "composite") == [victim_run]
    assert run_status(home, victim_run)[0].value == "STARTED"

    rerun = PipelineProcess(["run", "--config", str(good), "--year", "2024"], env)
    assert rerun.finish() == 0, rerun.output
    assert f"released dead run {victim_run[:8]} (yearly_ndvi crash|2024): its process (pid {victim.proc.pid}" \
           in rerun.output
    _assert_year_done(rerun, database_url, out, "crash", 2024)
    status, tags = run_status(home, victim_run)
    assert status.value == "FAILURE"
    assert any("is gone" in m for m in failure_messages(home, victim_run))
    assert slot_holders(home, "composite") == [] and slot_holders(home, "dbt") == []


@pytest.mark.slow
def test_kill_during_dbt_then_a_rerun_finishes(sample_area, database_url, tmp_path):
    out = tmp_path / "data"
    reset_database(database_url, out)
    home = dagster_home(tmp_path)
    env = cli_env(home, database_url)
    config = area_config(tmp_path / "area.yaml", sample_area, out, [2024])
    with psycopg.connect(database_url, autocommit=True) as lock:
        lock.execute("select pg_advisory_lock(%s)", (DBT_LOCK_KEY,))  # the dbt step will wait inside dbt's lock

        def dbt_step_waits():
            with psycopg.connect(database_url) as conn:
                waiting = conn.execute("select count(*) from pg_stat_activity where wait_event_type = 'Lock'"
                                       " and query like '%%pg_advisory_lock%%'").fetchone()[0]
            return slot_holders(home, "dbt") if waiting else None

        victim = PipelineProcess(["run", "--config", str(config), "--year", "2024"], env)
        victim_run = wait_for(dbt_step_waits, "a dbt step holding the dbt slot", victim.proc)[0]
        os.kill(victim.proc.pid, signal.SIGKILL)
        assert victim.finish() == -signal.SIGKILL
        lock.execute("select pg_advisory_unlock(%s)", (DBT_LOCK_KEY,))
    assert slot_holders(home, "dbt") == [victim_run]

    rerun = PipelineProcess(["run", "--config", str(config), "--year", "2024"], env)
    assert rerun.finish() == 0, rerun.output
    assert f"released dead run {victim_run[:8]} (area_inputs crash)" in rerun.output
    _assert_year_done(rerun, database_url, out, "crash", 2024)
    assert run_status(home, victim_run)[0].value == "FAILURE"
    assert slot_holders(home, "dbt") == []
