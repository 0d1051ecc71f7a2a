"""Every failure says its cause where the user looks: ``ndvi-pipeline run``'s lines name the step, the partition
and the exception the pipeline raised (class and message, with the URL or file), never Dagster's wrapper, and
the run's tag ``ndvi/failure`` carries the same line for the UI's run list. Real servers on 127.0.0.1."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import pytest

from dagster_project.cli import run
from dagster_project.failures import FAILURE_TAG
from ingestion.config import load_config
from tests.crash_env import HangingStacApi, area_config
from tests.helpers import FlakyProxy
from tests.pipeline_env import reset_database
from tests.range_server import RangeServer

WRAPPER_TEXT = ("DagsterExecutionStepExecutionError", "Error occurred while executing", "dagster._core")


def _run_year(config: Path, instance: dg.DagsterInstance, inputs: bool = False) -> tuple[list[str], str]:
    """One year through the CLI's ``run``: its lines, and the failed yearly run's ``ndvi/failure`` tag."""
    lines: list[str] = []
    results = run(load_config(config), years=[2024], instance=instance, inputs=inputs, latest=False,
                  echo=lines.append)
    yearly = results[-1]
    assert not yearly.success, lines
    assert not any(text in line for line in lines for text in WRAPPER_TEXT), lines
    return lines, instance.get_run_by_id(yearly.run_id).tags[FAILURE_TAG]


@pytest.mark.slow
def test_stac_500_stac_hang_and_a_cut_cog_print_their_cause(sample_area, database_url, tmp_path):
    out = tmp_path / "data"
    reset_database(database_url, out)
    instance = dg.DagsterInstance.ephemeral()
    prefix = "       yearly_ndvi causes 2024 failed in ndvi_composite: "

    with FlakyProxy("http://127.0.0.1:9", fail_first=10**9) as proxy:
        config = area_config(tmp_path / "500.yaml", sample_area, out, [2024], area="causes", imagery={
            "source": "earth-search", "options": {"url": proxy.url, "max_retries": 1, "backoff_seconds": 0.01}})
        lines, tag = _run_year(config, instance, inputs=True)
    expected = f"StacApiError: STAC search at {proxy.url} failed: APIError: "
    assert any(line.startswith(prefix + expected) and "injected failure" in line for line in lines), lines
    assert tag.startswith(f"ndvi_composite: {expected}")

    with HangingStacApi() as hanging:
        config = area_config(tmp_path / "hang.yaml", sample_area, out, [2024], area="causes", imagery={
            "source": "earth-search", "options": {"url": hanging.url, "max_retries": 0, "timeout_seconds": 1}})
        lines, tag = _run_year(config, instance)
    expected = f"StacApiError: STAC search at {hanging.url} failed: "
    cause = next(line for line in lines if line.startswith(prefix))
    assert cause.startswith(prefix + expected) and "timed out" in cause.lower(), lines
    assert tag == cause.removeprefix("       yearly_ndvi causes 2024 failed in ")

    catalog = tmp_path / "catalog"
    shutil.copytree(Path(sample_area["catalog"]).parent, catalog)
    item_file = next(catalog.rglob("S2B_32ULC_20240925_0_L2A.json"))
    red = item_file.parent / "red.tif"
    with RangeServer(catalog, cut={str(red.relative_to(catalog)): 20_000}) as server:
        item = json.loads(item_file.read_text())
        item["assets"]["red"]["href"] = server.href(red)
        item_file.write_text(json.dumps(item))
        config = area_config(tmp_path / "cut.yaml", sample_area, out, [2024], area="causes", imagery={
            "source": "local-stac", "options": {"catalog_path": str(catalog / "catalog.json")}},
            compute={"gdal_options": {"GDAL_HTTP_MAX_RETRY": 1, "GDAL_HTTP_RETRY_DELAY": 0.05}})
        lines, tag = _run_year(config, instance)
    expected = f"CorruptImageError: item S2B_32ULC_20240925_0_L2A: asset 'red' at {server.href(red)} cannot be read"
    assert any(line.startswith(prefix + expected) for line in lines), lines
    assert tag.startswith(f"ndvi_composite: {expected}")
    # nothing of the area's earlier state was lost: no composite was published for the failed year
    assert not (out / "causes" / "2024" / "composite" / "ndvi_composite_2024.tif").exists()
