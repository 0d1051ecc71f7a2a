"""A config for the session's synthetic area and test database, and running it through the real jobs."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import psycopg
import yaml

from dagster_project.cli import run
from ingestion.config import PipelineConfig, load_config

AREA = "test-area"


def write_area_config(sample_area: dict, out_dir: Path, years: list[int], area: str = AREA,
                      districts: str | None = None) -> Path:
    """A one-area config file beside ``out_dir`` (the output folder) for the sample catalog."""
    config = {
        "area": area,
        "districts": {"path": districts or sample_area["districts"]},
        "years": years,
        "imagery": {"source": "local-stac", "options": {"catalog_path": sample_area["catalog"]}},
        "output_dir": str(out_dir),
    }
    path = out_dir.parent / f"{out_dir.name}-{area}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run_pipeline(config: PipelineConfig | Path, years: list[int], inputs: bool = True, latest: bool = True,
                 areas: list[str] | None = None) -> list[dg.ExecuteInProcessResult]:
    """The area inputs, the years and the latest layer, as ``ndvi-pipeline run`` does, on an ephemeral
    instance; every run must succeed with no failing ERROR check."""
    if isinstance(config, Path):
        config = load_config(config)
    results = run(config, areas=areas, years=years, instance=dg.DagsterInstance.ephemeral(), inputs=inputs,
                  latest=latest, echo=lambda line: None)
    for result in results:
        assert result.success, [e.message for e in result.all_events if e.is_failure][:3]
        failed = [e for e in result.get_asset_check_evaluations() if not e.passed and e.severity.value == "ERROR"]
        assert not failed, failed
    return results


def reset_database(url: str, out_dir: Path | None = None) -> None:
    """Drop everything the pipeline made (schemas raw and analytics) and its output folder."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("set client_min_messages = warning")
        conn.execute("drop schema if exists analytics cascade")
        conn.execute("drop schema if exists raw cascade")
    if out_dir is not None and out_dir.exists():
        shutil.rmtree(out_dir)
