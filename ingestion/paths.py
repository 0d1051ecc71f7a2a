"""Project-relative locations, overridable by environment variables."""

from __future__ import annotations

import os
from pathlib import Path

#: The repository root (the folder holding ``pyproject.toml``).
PROJECT_ROOT = Path(__file__).resolve().parents[1]
#: The dbt project (the one definition of its path: Dagster, ``ndvi-dbt`` and the tests read it from here).
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"


def project_home() -> Path:
    """Folder for local state (embedded database, Dagster home); ``NDVI_HOME`` overrides the repo root."""
    return Path(os.environ.get("NDVI_HOME", PROJECT_ROOT)).resolve()


def data_dir() -> Path:
    """Folder the pipeline writes its outputs to; ``NDVI_DATA_DIR`` overrides ``<home>/data``."""
    return Path(os.environ.get("NDVI_DATA_DIR", project_home() / "data")).resolve()
