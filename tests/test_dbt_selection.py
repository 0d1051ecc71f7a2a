"""Every selection form dagster-dbt produces is honoured by the in-process dbt runner: above 200 selected
nodes dagster-dbt selects with a ``--selector`` written into a temporary copy of the project; a step of 250
selected models (of 260) builds exactly those 250, in this process."""

from __future__ import annotations

import json
import shutil

import dagster as dg
import psycopg
import pytest
from dagster_dbt import DbtProject, dbt_assets

from dagster_project.dbt_core import DbtCoreResource
from dagster_project.dbt_manifest import prepare_manifest
from dagster_project.resources import PostGISResource
from ingestion.paths import DBT_PROJECT_DIR

MODELS = 260
SELECTED = 250
SCHEMA = "analytics_many_nodes"  # dbt's default schema naming: the profile's schema + the model's


@pytest.fixture
def many_models(tmp_path, database_url):
    """A dbt project of 260 one-row views, with the pipeline's profile (its database from the resource)."""
    project = tmp_path / "many_models"
    (project / "models").mkdir(parents=True)
    (project / "dbt_project.yml").write_text(
        "name: many_models\nversion: '1.0'\nconfig-version: 2\nprofile: ndvi_pipeline\n"
        f"models:\n  many_models:\n    +materialized: view\n    +schema: {SCHEMA.removeprefix('analytics_')}\n")
    shutil.copyfile(DBT_PROJECT_DIR / "profiles.yml", project / "profiles.yml")
    for i in range(MODELS):
        (project / "models" / f"node_{i:03d}.sql").write_text(f"select {i} as node\n")
    yield project
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"drop schema if exists {SCHEMA} cascade")


@pytest.mark.slow
def test_a_step_of_250_selected_models_builds_exactly_those(many_models, database_url):
    project = DbtProject(project_dir=many_models)
    prepare_manifest(project)  # dagster-dbt's own preparation: the manifest was missing

    @dbt_assets(manifest=project.manifest_path, project=project, name="many_models")
    def many(context, dbt: DbtCoreResource):  # no annotation: this module postpones them (strings)
        yield from dbt.build(context)

    keys = sorted(many.keys, key=lambda k: k.path[-1])
    selected = keys[:SELECTED]
    job = dg.define_asset_job("many_models_job", selection=dg.AssetSelection.assets(*selected),
                              executor_def=dg.in_process_executor)
    postgis = PostGISResource(dsn=database_url)
    definitions = dg.Definitions(assets=[many], jobs=[job], resources={
        "dbt": DbtCoreResource(project_dir=str(many_models), postgis=postgis), "postgis": postgis})
    result = definitions.resolve_job_def("many_models_job").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)

    assert result.success, [e.message for e in result.all_events if e.is_failure][:3]
    materialised = {e.asset_key for e in result.get_asset_materialization_events()}
    assert materialised == set(selected)
    invocation = next((many_models / "target" / "dagster").glob("many_models-*"))
    results = json.loads((invocation / "run_results.json").read_text())["results"]
    assert len(results) == SELECTED and all(r["status"] == "success" for r in results)
    with psycopg.connect(database_url) as conn:
        views = {r[0] for r in conn.execute(
            "select table_name from information_schema.views where table_schema = %s", (SCHEMA,))}
    assert views == {k.path[-1] for k in selected}  # the 10 left out were not built
