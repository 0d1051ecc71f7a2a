"""``ndvi-pipeline run``: headless runs through the real jobs, one line per step, a non-zero exit on failure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from tests.conftest import PROJECT_ROOT
from tests.pipeline_env import AREA, reset_database, write_area_config

CLI = str(Path(sys.executable).with_name("ndvi-pipeline"))


@pytest.mark.slow
def test_run_prints_one_line_per_step_and_records_runs_under_the_real_jobs(sample_area, database_url, tmp_path):
    out = tmp_path / "data"
    config = write_area_config(sample_area, out, [2022, 2024])  # 2022 has no scenes in the sample catalog
    reset_database(database_url, out)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((PROJECT_ROOT / "dagster_project" / "dagster.yaml").read_text())
    env = {**os.environ, "DAGSTER_HOME": str(home), "DATABASE_URL": database_url}

    done = subprocess.run([CLI, "run", "--config", str(config), "--year", "2024"], env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    steps = [line.split()[1] for line in lines]
    assert steps == ["districts", "aoi_boundary", "dbt_area_models",  # area_inputs
                     "ndvi_composite", "raw_ndvi_composites", "dbt_yearly_models", "yearly_exports",  # yearly
                     "dbt_area_models", "latest_exports"], done.stdout  # latest
    assert all(line.startswith("ok ") for line in lines)
    composite = next(line for line in lines if " ndvi_composite " in line)
    assert f"{AREA} 2024" in composite and "scenes kept 7, dropped 1" in composite
    assert "DEBUG" not in done.stdout + done.stderr and "dbt build" not in done.stdout
    assert (out / AREA / "latest" / "ndvi_map.html").exists()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        jobs = sorted(r.job_name for r in instance.get_runs())
    assert jobs == ["area_inputs", "latest_ndvi", "yearly_ndvi"]

    failed = subprocess.run([CLI, "run", "--config", str(config), "--year", "2022"], env=env, capture_output=True,
                            text=True, timeout=900)
    assert failed.returncode == 1
    assert "FAILED ndvi_composite" in failed.stdout and "no usable Sentinel-2 scenes for 2022" in failed.stdout

    raw = yaml.safe_load(config.read_text())
    unknown = subprocess.run([CLI, "run", "--config", str(config), "--area", "nowhere"], env=env,
                             capture_output=True, text=True, timeout=120)
    assert unknown.returncode == 2 and f"no area 'nowhere'; configured: {raw['area']}" in unknown.stderr
