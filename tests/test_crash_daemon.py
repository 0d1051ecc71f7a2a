"""A crashed run launched under `dagster dev` (what `make dev` runs) never wedges the pipeline either: its run
worker killed with ``kill -9`` during the composite, then during dbt, the run is marked failed, its pool slot
freed, and the next run launched the same way finishes. A real `dagster dev`, its daemon and GraphQL API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from dagster_project.cli import run
from dagster_project.partitions import area_year_key
from dagster_project.run_health import PID_TAG
from ingestion.config import load_config
from ingestion.db.dbt_lock import DBT_LOCK_KEY
from tests.conftest import PROJECT_ROOT
from tests.crash_env import area_config, dagster_home, slot_holders, wait_for
from tests.helpers import free_port
from tests.pipeline_env import reset_database

AREA, YEAR = "daemon", 2024
LAUNCH = """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""
STATUS = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status tags { key value } } } }"


def _graphql(url: str, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(f"{url}/graphql", data=body, headers={"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req, timeout=10).read())["data"]


def _launch_year(url: str) -> str:
    """Launch ``yearly_ndvi`` for the area-year as the UI's launchpad does; its run id."""
    key = area_year_key(AREA, YEAR)
    tags = {"dagster/partition": str(key), "dagster/partition/area": AREA, "dagster/partition/year": str(YEAR)}
    params = {"selector": {"repositoryLocationName": "ndvi_pipeline", "repositoryName": "__repository__",
                           "jobName": "yearly_ndvi"},
              "runConfigData": {}, "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]}}
    launched = _graphql(url, LAUNCH, {"params": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]["runId"]


def _run(url: str, run_id: str) -> dict:
    found = _graphql(url, STATUS, {"id": run_id})["runOrError"]
    return {"status": found["status"], "tags": {t["key"]: t["value"] for t in found["tags"]}}


def _kill_worker(url: str, run_id: str) -> float:
    """``kill -9`` the process executing ``run_id`` (its ``ndvi/pid`` tag); the moment of the kill."""
    pid = int(wait_for(lambda: _run(url, run_id)["tags"].get(PID_TAG), f"run {run_id} to record its process"))
    os.kill(pid, signal.SIGKILL)
    return time.monotonic()


def _wait_released(url: str, home: Path, run_id: str, pool: str, killed: float) -> float:
    """Wait until the killed run is FAILURE and holds no slot of ``pool``; seconds since the kill."""
    wait_for(lambda: _run(url, run_id)["status"] == "FAILURE", f"the killed run {run_id} to be marked failed")
    wait_for(lambda: run_id not in slot_holders(home, pool), f"the killed run's {pool} slot to be freed")
    return time.monotonic() - killed


def _wait_success(url: str, run_id: str) -> None:
    status = wait_for(lambda: (s := _run(url, run_id)["status"]) in ("SUCCESS", "FAILURE", "CANCELED") and s,
                      f"run {run_id} to finish")
    assert status == "SUCCESS", f"run {run_id}: {status}"


def _year_rows(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute("select count(*) from analytics.ndvi_stats_yearly where area_code = %s and year = %s",
                            (AREA, YEAR)).fetchone()[0]


@pytest.mark.slow
def test_daemon_run_killed_during_composite_and_during_dbt_is_released_and_the_next_run_finishes(
        sample_area, database_url, tmp_path):
    out = tmp_path / "data"
    reset_database(database_url, out)
    home = dagster_home(tmp_path)
    config = area_config(tmp_path / "daemon.yaml", sample_area, out, [YEAR], area=AREA)
    with dg.DagsterInstance.from_config(str(home)) as instance:  # the area's inputs, as a first run would
        assert all(r.success for r in run(load_config(config), years=[], instance=instance, latest=False,
                                          echo=lambda line: None))
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "NDVI_CONFIG": str(config), "DATABASE_URL": database_url}
    dagster = Path(sys.executable).with_name("dagster")
    proc = subprocess.Popen([str(dagster), "dev", "-h", "127.0.0.1", "-p", str(port)], cwd=PROJECT_ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _ui_up(url), "dagster dev to serve the asset graph", proc)

        # kill -9 while the composite runs (it holds the composite slot)
        victim = _launch_year(url)
        wait_for(lambda: victim in slot_holders(home, "composite"), "the run to hold the composite slot", proc)
        released = _wait_released(url, home, victim, "composite", _kill_worker(url, victim))
        print(f"\ncomposite: run released {released:.1f} s after kill -9")
        assert released <= 60  # the README's bound (a safeguard here: the run is marked failed at once)

        # kill -9 while its dbt step waits inside the dbt lock (held here), holding the dbt slot
        with psycopg.connect(database_url, autocommit=True) as lock:
            lock.execute("select pg_advisory_lock(%s)", (DBT_LOCK_KEY,))
            victim = _launch_year(url)
            wait_for(lambda: victim in slot_holders(home, "dbt"), "the run's dbt step to hold the dbt slot", proc)
            killed = _kill_worker(url, victim)
            lock.execute("select pg_advisory_unlock(%s)", (DBT_LOCK_KEY,))
        released = _wait_released(url, home, victim, "dbt", killed)
        print(f"dbt: run released {released:.1f} s after kill -9")
        assert released <= 60

        # the next run launched the same way finishes
        _wait_success(url, _launch_year(url))
        assert _year_rows(database_url) == 8
        assert slot_holders(home, "composite") == [] and slot_holders(home, "dbt") == []
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)


def _ui_up(url: str) -> bool:
    try:
        return bool(_graphql(url, "{ assetNodes { id } }")["assetNodes"])
    except (OSError, KeyError, TypeError, ValueError):
        return False
