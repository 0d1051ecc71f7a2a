"""PostgreSQL stopped in the middle of a year: the year fails with a line naming the database server (never
Dagster's wrapper), every earlier year stays as it was, and once the server is back a re-run finishes. A private
embedded cluster, so stopping it harms no other test."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from dagster_project.cli import run
from dagster_project.failures import FAILURE_TAG
from ingestion.config import load_config
from ingestion.db.embedded import EmbeddedCluster
from tests.crash_env import area_config, dagster_home, wait_for
from tests.helpers import free_port
from tests.test_fault_causes import WRAPPER_TEXT


def _rows(dsn: str) -> dict[int, list]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("select year, district_code, pixel_count, mean_ndvi, stddev_ndvi"
                            " from analytics.ndvi_stats_yearly order by 1, 2").fetchall()
        composites = conn.execute("select year, count(*) from raw.ndvi_composites group by 1").fetchall()
    by_year: dict[int, list] = {}
    for row in rows:
        by_year.setdefault(row[0], []).append(row[1:])
    return {"stats": by_year, "composites": dict(composites)}


@pytest.mark.slow
def test_postgres_stopped_mid_year_names_the_server_keeps_earlier_years_and_a_rerun_finishes(
        sample_area, tmp_path, monkeypatch):
    # a folder the server's user can traverse when the tests run as root (pytest's tmp_path is root's, 0700)
    home = Path(tempfile.mkdtemp(prefix="ndvi-pg-stop-"))
    os.chmod(home, 0o711)
    cluster = EmbeddedCluster(data_dir=home / "pg", port=free_port())
    cluster.start()
    try:
        dsn = cluster.dsn()
        monkeypatch.setenv("DATABASE_URL", dsn)
        home_dir = dagster_home(tmp_path)  # the project's dagster.yaml: the composite pool has a slot to claim
        instance = dg.DagsterInstance.from_config(str(home_dir))
        config = load_config(area_config(tmp_path / "pg.yaml", sample_area, tmp_path / "out", [2019, 2024],
                                         area="pgstop"))
        lines: list[str] = []
        assert all(r.success for r in run(config, years=[2019], instance=instance, echo=lines.append)), lines
        before = _rows(dsn)
        assert len(before["stats"][2019]) == 8

        lines = []
        results = []
        year = threading.Thread(target=lambda: results.extend(
            run(config, years=[2024], instance=instance, inputs=False, echo=lines.append)))
        year.start()
        # polled through the run's own instance: a fresh instance per poll (slot_holders) loads Dagster's
        # migrations each time, slower than this small composite, which could end unseen between two polls
        wait_for(lambda: instance.event_log_storage.get_concurrency_info("composite").claimed_slots,
                 "the 2024 composite to start")
        cluster.stop()  # while the composite runs: its load and dbt steps find no server
        year.join()
        assert not results[-1].success and not cluster.is_running()
        failed = [line for line in lines if line.startswith("       yearly_ndvi pgstop 2024 failed in ")]
        assert failed, lines
        assert f"127.0.0.1:{cluster.port}" in failed[0] and "Cannot connect to PostgreSQL" in failed[0], lines
        assert not any(text in line for line in lines for text in WRAPPER_TEXT), lines
        tag = instance.get_run_by_id(results[-1].run_id).tags[FAILURE_TAG]
        assert tag == failed[0].removeprefix("       yearly_ndvi pgstop 2024 failed in ")

        cluster.start()
        assert _rows(dsn) == before  # nothing lost, nothing half-written
        lines = []
        assert all(r.success for r in run(config, years=[2024], instance=instance, inputs=False,
                                          echo=lines.append)), lines
        after = _rows(dsn)
        assert after["stats"][2019] == before["stats"][2019] and len(after["stats"][2024]) == 8
    finally:
        cluster.stop()
        shutil.rmtree(home, ignore_errors=True)
