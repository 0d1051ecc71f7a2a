"""dbt inside the Dagster process (``dagster_project/dbt_core.py``): exactly one parse per process and
database, a build per step from that parse, the process environment never written (GDAL reads go on beside
dbt), the dbt lock held until dbt's thread has ended even when the step's generator is closed early, and a
failing dbt test that fails its step and names the test."""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dagster as dg
import numpy as np
import psycopg
import pytest
import rasterio
from dagster_dbt import dbt_assets
from rasterio.windows import Window

from dagster_project.assets.dbt import TRANSLATOR
from dagster_project.assets.dbt import YEARLY_MODELS as YEARLY_MODELS_SELECT
from dagster_project.dbt_core import DbtCoreResource, forget_parses
from dagster_project.definitions import build_definitions
from dagster_project.partitions import area_year_partitions
from dagster_project.refresh import FORCE_TAG
from dagster_project.resources import dbt_project
from ingestion.config import load_config
from ingestion.db.dbt_lock import lock_holder
from ingestion.paths import DBT_PROJECT_DIR
from tests.pipeline_env import AREA, reset_database, run_pipeline, write_area_config

INVOCATIONS = DBT_PROJECT_DIR / "target" / "dagster"
YEARLY_MODELS = {"stg_ndvi_tiles", "district_tile_masks", "ndvi_stats_yearly", "ndvi_stats_yearly_distribution"}


def _folders(prefix: str) -> set[str]:
    return {p.name for p in INVOCATIONS.glob(f"{prefix}-*")} if INVOCATIONS.exists() else set()


def _dbt_running() -> bool:
    return any(t.name == "dbt-build" and t.is_alive() for t in threading.enumerate())


class WatchWhileDbtRuns(threading.Thread):
    """Samples ``os.environ`` and reads a GeoTIFF window with GDAL from two threads, for as long as it runs;
    counts what happened while a dbt build thread was alive."""

    def __init__(self, tif: Path) -> None:
        super().__init__(name="watch-dbt", daemon=True)
        self.tif = tif
        with rasterio.open(tif) as src:
            self.expected = src.read(1, window=Window(0, 0, 64, 64))
        self.environment = dict(os.environ)
        self.changes: list[str] = []
        self.pg_variables = {k for k in os.environ if k.startswith("PG")}
        self.previous_during_dbt = False
        self.samples_during_dbt = 0
        self.reads_during_dbt = 0
        self.bad_reads = 0
        self.stop = threading.Event()

    def _read(self) -> bool:
        with rasterio.open(self.tif) as src:
            return np.array_equal(src.read(1, window=Window(0, 0, 64, 64)), self.expected)

    def run(self) -> None:
        with ThreadPoolExecutor(2) as pool:
            while not self.stop.is_set():
                during = _dbt_running()
                reads = [pool.submit(self._read) for _ in range(2)] if during else []
                now = dict(os.environ)
                changed = sorted(k for k in now.keys() | self.environment.keys()
                                 if now.get(k) != self.environment.get(k))
                self.pg_variables |= {k for k in now if k.startswith("PG")}
                self.bad_reads += sum(not r.result() for r in reads)
                still = _dbt_running()
                if changed and during and still and self.previous_during_dbt:
                    self.changes.append(", ".join(changed))  # written while dbt ran, between two samples
                self.environment, self.previous_during_dbt = now, during and still
                if during and still:
                    self.samples_during_dbt += 1
                    self.reads_during_dbt += len(reads)
                time.sleep(0.005)


@pytest.fixture(scope="module")
def two_years(sample_area, database_url, tmp_path_factory):
    """2019 and 2024 through the real jobs in this process, from a process that has parsed nothing yet,
    watched while dbt runs."""
    out = tmp_path_factory.mktemp("dbt_core") / "data"
    config = write_area_config(sample_area, out, [2019, 2024])
    reset_database(database_url, out)
    forget_parses()
    before = {prefix: _folders(prefix) for prefix in ("parse", "dbt_yearly_models", "dbt_area_models")}
    watch = WatchWhileDbtRuns(next(Path(sample_area["root"]).rglob("*.tif")))
    watch.start()
    try:
        run_pipeline(config, [2019, 2024])
    finally:
        watch.stop.set()
        watch.join()
    after = {prefix: _folders(prefix) - before[prefix] for prefix in before}
    return {"config": config, "url": database_url, "watch": watch, "new": after}


@pytest.mark.slow
def test_one_parse_serves_every_dbt_step_of_the_process(two_years):
    new = two_years["new"]
    # area inputs + latest, and one for both years (a batch); exactly one parse: the process had parsed
    # nothing before
    assert len(new["dbt_area_models"]) == 2 and len(new["dbt_yearly_models"]) == 1
    assert len(new["parse"]) == 1
    for name in new["dbt_yearly_models"]:
        folder = INVOCATIONS / name
        results = json.loads((folder / "run_results.json").read_text())["results"]
        built = {r["unique_id"].split(".")[-1] for r in results if r["unique_id"].startswith("model.")}
        assert built == YEARLY_MODELS
        assert all(r["status"] in ("success", "pass") for r in results), results
        log = (folder / "dbt.log").read_text()
        assert "Partial parsing enabled" not in log and "Unable to do partial parsing" not in log  # no parse


@pytest.mark.slow
def test_the_environment_is_never_written_while_dbt_runs_beside_gdal_reads(two_years):
    watch = two_years["watch"]
    assert watch.samples_during_dbt > 10 and watch.reads_during_dbt > 10  # it did watch while dbt ran
    assert watch.changes == []  # nothing written into the environment while dbt ran
    assert watch.pg_variables == set()  # no PG* ever (the tests give the database as DATABASE_URL)
    assert watch.bad_reads == 0


@pytest.mark.slow
def test_an_early_close_keeps_the_dbt_lock_until_dbt_has_ended(two_years):
    """A step closes dbt's event stream after the first event while dbt still runs (it waits here for a table
    lock): closing waits for dbt, and the dbt lock stays taken until dbt's thread has ended."""
    config = load_config(two_years["config"])
    seen: dict[str, bool] = {}
    with psycopg.connect(two_years["url"], autocommit=True) as watcher, \
            psycopg.connect(two_years["url"]) as blocker:

        @dbt_assets(manifest=dbt_project.manifest_path, project=dbt_project, select=YEARLY_MODELS_SELECT,
                    dagster_dbt_translator=TRANSLATOR, partitions_def=area_year_partitions(config),
                    name="dbt_yearly_models")
        def closes_early(context, dbt: DbtCoreResource):  # no annotation: this module postpones them
            step = dbt.build(context)
            first = next(step)  # stg_ndvi_tiles is built; dbt then waits for ndvi_stats_yearly
            closer = threading.Thread(target=step.close, name="close-step")
            closer.start()
            time.sleep(2)
            seen["closing waits for dbt"] = closer.is_alive() and _dbt_running()
            seen["lock held meanwhile"] = lock_holder(watcher) is not None
            blocker.rollback()  # dbt goes on and ends
            closer.join(120)
            seen["dbt ended when closed"] = not closer.is_alive() and not _dbt_running()
            seen["lock released after"] = lock_holder(watcher) is None
            yield first

        blocker.execute("update raw.ndvi_composites set loaded_at = clock_timestamp() where year = 2024")
        blocker.commit()  # dbt re-tiles and recomputes 2024
        blocker.execute("lock table analytics.ndvi_stats_yearly in access exclusive mode")
        resources = build_definitions(config).resources
        dg.materialize([closes_early], partition_key=dg.MultiPartitionKey({"area": AREA, "year": "2024"}),
                       resources={"dbt": resources["dbt"]}, instance=dg.DagsterInstance.ephemeral(),
                       raise_on_error=False)
    assert seen == {"closing waits for dbt": True, "lock held meanwhile": True, "dbt ended when closed": True,
                    "lock released after": True}


@pytest.mark.slow
def test_a_failing_dbt_test_fails_its_step_and_names_the_test(two_years):
    config = load_config(two_years["config"])
    with psycopg.connect(two_years["url"], autocommit=True) as conn:
        district, mean = conn.execute(
            "select district_code, mean_ndvi from analytics.ndvi_stats_yearly where year = 2024"
            " order by district_code limit 1").fetchone()
        conn.execute("update analytics.ndvi_stats_yearly set mean_ndvi = max_ndvi + 0.5"
                     " where year = 2024 and district_code = %s", (district,))
    job = build_definitions(config).resolve_job_def("latest_ndvi")
    try:
        # forced: a row edited behind the pipeline's back is no input change its no-op check sees (issue 20)
        result = job.execute_in_process(partition_key=AREA, instance=dg.DagsterInstance.ephemeral(),
                                        raise_on_error=False, tags={FORCE_TAG: "true"})
    finally:  # the row as it was, and the latest layer rebuilt from it: no other test meets the broken row
        with psycopg.connect(two_years["url"], autocommit=True) as conn:
            conn.execute("update analytics.ndvi_stats_yearly set mean_ndvi = %s"
                         " where year = 2024 and district_code = %s", (mean, district))
        rebuilt = job.execute_in_process(partition_key=AREA, instance=dg.DagsterInstance.ephemeral())
        assert rebuilt.success
        with psycopg.connect(two_years["url"]) as conn:
            restored = conn.execute("select mean_ndvi from analytics.ndvi_stats_latest where district_code = %s",
                                    (district,)).fetchone()[0]
    # the failed build left no build record (ingestion.area_builds), so the next, unforced, run built the layer
    assert restored == pytest.approx(mean, abs=1e-12)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_key == "dbt_area_models"
    message = failure.event_specific_data.error.message
    assert message.splitlines()[0].endswith("dbt build failed: latest_min_le_mean_le_max"), message
    failed = {c.check_name for c in result.get_asset_check_evaluations() if not c.passed}
    assert "latest_min_le_mean_le_max" in failed
    passed = {c.check_name for c in result.get_asset_check_evaluations() if c.passed}
    assert "latest_one_row_per_area_and_district" in passed
