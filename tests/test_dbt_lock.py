"""Every dbt entry point takes the same lock: a manual ``ndvi-dbt build`` racing a Dagster dbt step refuses
(``--no-wait``) or waits, saying for whom; the two never overlap. Real processes and a real database."""

from __future__ import annotations

import subprocess

import dagster as dg
import psycopg
import pytest

from ingestion.cli.dbt import needs_lock
from ingestion.db.dbt_lock import lock_holder
from tests.crash_env import DBT_CLI, PipelineProcess, area_config, cli_env, dagster_home, wait_for
from tests.pipeline_env import reset_database, run_pipeline


@pytest.mark.parametrize(("args", "locked"), [
    (["build"], True), (["build", "--select", "ndvi_stats_yearly"], True), (["docs", "generate"], True),
    (["--no-use-colors", "run"], True), (["docs", "serve", "--port", "8080"], False), (["parse"], False),
    (["--version"], False), (["build", "--help"], False), ([], False)])
def test_commands_that_touch_the_database_take_the_lock(args, locked):
    assert needs_lock(args) is locked


@pytest.mark.slow
def test_manual_dbt_build_racing_a_dagster_dbt_step_refuses_or_waits_for_it(sample_area, database_url, tmp_path):
    out = tmp_path / "data"
    reset_database(database_url, out)
    config = area_config(tmp_path / "race.yaml", sample_area, out, [2024], area="race")
    run_pipeline(config, [2024])
    home = dagster_home(tmp_path)
    env = cli_env(home, database_url)

    with psycopg.connect(database_url, autocommit=True) as watcher, psycopg.connect(database_url) as blocker:
        # the Dagster dbt step takes the lock, then waits for this table: it holds the lock for as long as we like
        blocker.execute("lock table analytics.ndvi_stats_yearly in access exclusive mode")
        # forced: nothing changed since the first run, so an unforced run would skip the dbt steps (issue 20)
        pipeline = PipelineProcess(["run", "--config", str(config), "--year", "2024", "--force"], env)

        def yearly_step_holds_the_lock() -> str | None:
            holder = lock_holder(watcher)  # the area_inputs step holds it briefly before
            return holder if holder and " dbt_yearly_models race|2024 " in holder else None

        holder = wait_for(yearly_step_holds_the_lock, "the yearly dbt step holding the dbt lock", pipeline.proc)
        assert holder.startswith("dagster run ")

        refused = subprocess.run([DBT_CLI, "--no-wait", "build"], env=env, capture_output=True, text=True,
                                 timeout=300)
        assert refused.returncode == 3, refused.stdout + refused.stderr
        assert f"ndvi-dbt: dbt is already running for {holder.split(' (server pid')[0]}" in refused.stderr
        assert "Running with dbt" not in refused.stdout  # dbt never started

        manual = PipelineProcess(["build"], env, program=DBT_CLI)
        waiting = manual.wait_line("ndvi-dbt: waiting for the dbt lock, held by dagster run")
        assert " dbt_yearly_models race|2024" in waiting
        assert not any("Running with dbt" in line for line in manual.lines)  # still waiting, not overlapping
        blocker.rollback()  # the Dagster step goes on, finishes, and releases the lock

        assert pipeline.finish() == 0, pipeline.output
        assert manual.finish() == 0, manual.output
    got = manual.lines.index("ndvi-dbt: got the dbt lock")
    assert any("Running with dbt" in line for line in manual.lines[got:])
    assert not any("already exists" in line for line in manual.lines)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        assert sorted(r.job_name for r in runs) == ["area_inputs", "latest_ndvi", "yearly_ndvi"]
        assert {r.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}
