"""Point the Dagster code location at the session's synthetic area and test database, then import it."""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path

import psycopg
import yaml


def write_area_config(sample_area: dict, out_dir: Path, years: list[int]) -> Path:
    config = {
        "area": "test-area",
        "districts": {"path": sample_area["districts"]},
        "years": years,
        "imagery": {"source": "local-stac", "options": {"catalog_path": sample_area["catalog"]}},
        "output_dir": str(out_dir),
    }
    path = out_dir.parent / f"{out_dir.name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def load_code_location(config: Path):
    """Import (or re-import) the code location with ``config``; returns the runner module."""
    os.environ["NDVI_CONFIG"] = str(config)
    import dagster_project.settings

    importlib.reload(dagster_project.settings)
    for name in ("dagster_project.assets.vector", "dagster_project.assets.imagery", "dagster_project.assets.dbt",
                 "dagster_project.assets.exports", "dagster_project.definitions", "dagster_project.runner"):
        module = importlib.import_module(name)
        importlib.reload(module)
    return importlib.import_module("dagster_project.runner")


def reset_database(url: str, out_dir: Path | None = None) -> None:
    """Drop everything the pipeline made (schemas raw and analytics) and its output folder."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("set client_min_messages = warning")
        conn.execute("drop schema if exists analytics cascade")
        conn.execute("drop schema if exists raw cascade")
    if out_dir is not None and out_dir.exists():
        shutil.rmtree(out_dir)
