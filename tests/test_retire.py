"""Retiring one of two areas: ``ndvi-pipeline retire`` removes its rows from every table in one go and moves its
folder aside, leaves the other area's rows and files as they were, refuses a configured area, and ``dbt build``
passes afterwards."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
import yaml

from dagster_project.cli import main
from ingestion.retire import RETIRED_DIR, area_tables
from tests.pipeline_env import reset_database, run_pipeline


def _config(path: Path, sample_area: dict, out: Path, areas: list[str]) -> Path:
    path.write_text(yaml.safe_dump({
        "years": [2024],
        "imagery": {"source": "local-stac", "options": {"catalog_path": sample_area["catalog"]}},
        "output_dir": str(out),
        "areas": [{"area": a, "districts": {"path": sample_area["districts"]}} for a in areas],
    }))
    return path


def _rows_by_table(url: str, area: str) -> dict[str, list]:
    """Every row of ``area`` in every area table (raster and geometry columns as their hashes)."""
    with psycopg.connect(url) as conn:
        tables = area_tables(conn)
        return {f"{schema}.{table}": sorted(map(str, conn.execute(
            f"select md5(t::text) from {schema}.{table} as t where area_code = %s", (area,)).fetchall()))  # noqa: S608
            for schema, table in tables}


def _files(folder: Path) -> dict:
    return {p.relative_to(folder): (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_retiring_one_of_two_areas_removes_its_rows_and_files_and_nothing_else(tmp_path, sample_area,
                                                                                database_url, capsys):
    out = tmp_path / "out"
    reset_database(database_url, out)
    run_pipeline(_config(tmp_path / "both.yaml", sample_area, out, ["keep", "gone"]), [2024])
    kept_rows, kept_files = _rows_by_table(database_url, "keep"), _files(out / "keep")
    gone_rows = _rows_by_table(database_url, "gone")
    assert all(kept_rows.values()) and all(gone_rows.values())  # both areas fill every area table
    assert len(gone_rows) >= 8  # raw.districts, raw.ndvi_composites, ... analytics.ndvi_stats_latest
    gone_files = _files(out / "gone")
    assert any(p.suffix == ".tif" for p in gone_files)

    # a configured area is refused, and nothing of it changes
    both = tmp_path / "both.yaml"
    assert main(["retire", "gone", "--config", str(both)]) == 2
    assert "is still configured" in capsys.readouterr().out
    assert _rows_by_table(database_url, "gone") == gone_rows

    # removed from the config: retired
    only_keep = _config(tmp_path / "keep.yaml", sample_area, out, ["keep"])
    assert main(["retire", "gone", "--config", str(only_keep)]) == 0
    printed = capsys.readouterr().out
    total = sum(len(rows) for rows in gone_rows.values())
    assert f"retired gone: {total} rows deleted in one transaction" in printed
    assert not any(_rows_by_table(database_url, "gone").values())
    assert not (out / "gone").exists()
    (moved,) = (out / RETIRED_DIR).iterdir()
    assert moved.name.startswith("gone-") and _files(moved).keys() == gone_files.keys()
    assert _rows_by_table(database_url, "keep") == kept_rows
    assert _files(out / "keep") == kept_files

    # the models and their tests pass without the area, and a second retire finds nothing
    dbt = subprocess.run([str(Path(sys.executable).with_name("ndvi-dbt")), "build", "--quiet"],
                         capture_output=True, text=True)
    assert dbt.returncode == 0, dbt.stdout[-3000:] + dbt.stderr[-3000:]
    assert _rows_by_table(database_url, "keep") == kept_rows
    assert main(["retire", "gone", "--config", str(only_keep)]) == 0
    assert "nothing to retire" in capsys.readouterr().out


def test_retire_refuses_a_configured_area_before_touching_the_database(tmp_path, sample_area, capsys):
    config = _config(tmp_path / "one.yaml", sample_area, tmp_path / "out", ["served"])
    assert main(["retire", "served", "--config", str(config)]) == 2
    assert f"area 'served' is still configured in {config}" in capsys.readouterr().out
