"""One manifest: dagster-dbt's preparation refreshes a manifest older than the project's files, and a step
whose parse disagrees with the manifest its selection came from fails, naming the node, instead of building
something other than what Dagster selected."""

from __future__ import annotations

import copy
import json
import os
import shutil
import time

import dagster as dg
import pytest
from dagster_dbt import DbtProject

from dagster_project.dbt_core import DbtCoreResource
from dagster_project.dbt_manifest import check_agrees, manifest_is_stale, prepare_manifest
from dagster_project.resources import PostGISResource, dbt_project
from ingestion.paths import DBT_PROJECT_DIR


@pytest.mark.slow
def test_a_manifest_older_than_a_model_is_prepared_again(tmp_path):
    project_dir = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, project_dir, ignore=shutil.ignore_patterns("target", "logs"))
    project = DbtProject(project_dir=project_dir)
    assert manifest_is_stale(project)  # none yet
    prepare_manifest(project)
    assert not manifest_is_stale(project)

    model = project_dir / "models" / "marts" / "ndvi_trend.sql"
    model.write_text(model.read_text() + "\n-- edited\n")
    edited_at = project.manifest_path.stat().st_mtime + 1  # after the manifest, whatever the clock's resolution
    os.utime(model, (edited_at, edited_at))
    time.sleep(max(0.0, edited_at - time.time()) + 0.1)
    assert manifest_is_stale(project)
    prepare_manifest(project)
    assert not manifest_is_stale(project)
    nodes = json.loads(project.manifest_path.read_text())["nodes"]
    assert "-- edited" in nodes["model.ndvi_pipeline.ndvi_trend"]["raw_code"]


@pytest.mark.slow
def test_a_step_refuses_a_parse_that_disagrees_with_its_manifest(database_url):
    resource = DbtCoreResource(project_dir=str(DBT_PROJECT_DIR), postgis=PostGISResource(dsn=database_url))
    parsed = resource.manifest_future(database_url).result()[0]
    selected_from = json.loads(dbt_project.manifest_path.read_text())
    check_agrees(parsed, selected_from, DBT_PROJECT_DIR)  # the same project: no complaint

    edited = copy.deepcopy(selected_from)
    edited["nodes"]["model.ndvi_pipeline.ndvi_trend"]["checksum"]["checksum"] = "0" * 64
    with pytest.raises(dg.Failure, match=r"changed after the code location loaded.*ndvi_trend.*reload"):
        check_agrees(parsed, edited, DBT_PROJECT_DIR)
