"""One manifest: the asset graph and the dbt steps see the same dbt project.

``@dbt_assets`` builds the asset graph, and dagster-dbt the steps' selections, from ``target/manifest.json``;
the dbt steps execute what the in-process parse (:mod:`dagster_project.dbt_core`) finds in the project's files.
Two rules keep them the same:

- :func:`prepare_manifest`, called before the dbt assets are defined, is dagster-dbt's own preparation
  (what ``DbtProject.prepare_if_dev()`` does: a ``dbt parse`` through dagster-dbt's ``DbtCliResource``) run
  whenever the manifest is missing or older than a file of the project, under ``dagster dev`` and everywhere
  else, so editing a model and then reloading the code location, running ``ndvi-pipeline run`` or the tests
  needs no ``make manifest``. Unlike ``prepare_if_dev()``, it does not parse at every load under ``dagster
  dev``: every run worker loads the code location too, and a parse per run (10-40 s here) bought nothing the
  staleness test and :func:`check_agrees` do not already give. (``prepare_if_dev()`` also looks for ``dbt`` on
  ``PATH`` only, which a venv that is not activated lacks.) ``make manifest`` is dagster-dbt's command
  (``dagster-dbt project prepare-and-package --file dagster_project/dbt_manifest.py``).
- :func:`check_agrees`: before a step builds, the parse it executes from must hold the nodes of the manifest
  its selection came from, with the same checksums; a file edited after the code location loaded fails the
  step with what to do, instead of building something other than what Dagster selected.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource, DbtProject

from dagster_project.dbt_adapter import node_checksums
from dagster_project.resources import dbt_project

#: Files of the dbt project whose change changes the manifest.
SOURCE_SUFFIXES = (".sql", ".yml", ".yaml", ".md", ".csv")
#: Folders of the dbt project that hold no sources.
NOT_SOURCES = ("target", "dbt_packages", "logs")
#: Resource types whose selection and execution must agree.
EXECUTED = ("model", "test", "seed", "snapshot")


def newest_source_mtime(project_dir: Path) -> float:
    """Modification time of the newest source file of the dbt project (0 when there is none)."""
    newest = 0.0
    for path in project_dir.rglob("*"):
        relative = path.relative_to(project_dir).parts
        if relative and relative[0] in NOT_SOURCES:
            continue
        if path.suffix in SOURCE_SUFFIXES and path.is_file():
            newest = max(newest, path.stat().st_mtime)
    return newest


def manifest_is_stale(project: DbtProject) -> bool:
    """Whether ``manifest.json`` is missing or older than a source file of the project."""
    manifest = Path(project.manifest_path)
    return not manifest.exists() or manifest.stat().st_mtime < newest_source_mtime(Path(project.project_dir))


def dbt_executable() -> str:
    """``dbt`` on ``PATH``, else the one installed beside this Python (the venv's, when it is not activated)."""
    return shutil.which("dbt") or str(Path(sys.executable).with_name("dbt"))


def prepare_manifest(project: DbtProject = dbt_project) -> Path:
    """What ``DbtProject.prepare_if_dev()`` does (a ``dbt parse`` through dagster-dbt's ``DbtCliResource``,
    into the project's target folder), when the manifest is stale; with the venv's ``dbt`` when none is on
    ``PATH``. Returns the manifest's path."""
    if manifest_is_stale(project):
        DbtCliResource(project_dir=project, dbt_executable=dbt_executable()).cli(
            ["parse", "--quiet"], target_path=project.target_path).wait()
    return Path(project.manifest_path)


def check_agrees(parsed: Any, selected_from: Mapping[str, Any], project_dir: str | Path) -> None:
    """Fail the step when the parsed manifest it executes from lacks a node of the manifest its selection came
    from, or holds it with other contents."""
    executed = node_checksums(parsed)
    differing = sorted(
        unique_id for unique_id, node in selected_from.get("nodes", {}).items()
        if node.get("resource_type") in EXECUTED
        and executed.get(unique_id) != node.get("checksum", {}).get("checksum"))
    if differing:
        shown = ", ".join(differing[:5]) + (f" and {len(differing) - 5} more" if len(differing) > 5 else "")
        raise dg.Failure(
            description=f"the dbt project in {project_dir} changed after the code location loaded its manifest "
                        f"({shown}): reload the code location (Reload in the Dagster UI, or restart "
                        "`ndvi-pipeline`), so that what Dagster selects is what dbt runs")
