"""The composite on a real Dask cluster (LocalCluster, worker processes) equals the local run exactly."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import numpy as np
import pytest
import rasterio
import yaml

from dagster_project.assets.imagery import build_imagery_assets
from dagster_project.partitions import area_year_key
from ingestion.config import load_config
from ingestion.imagery.composite import build_composite, stream_composite
from ingestion.pipeline import build_aoi, prepare_districts
from tests.pipeline_env import write_area_config
from tests.range_server import RangeServer
from tests.test_remote_reads import FAST_RETRIES, assert_same_composite, sample_items_and_grid, served


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      host="127.0.0.1", memory_limit="1GiB") as cluster:
        yield cluster.scheduler_address


def test_cluster_composite_equals_local_pixels_and_counts(sample_area, cluster, tmp_path):
    items, geobox = sample_items_and_grid(sample_area)
    local = build_composite(items, geobox, chunk=256)
    remote = build_composite(items, geobox, chunk=256, scheduler=cluster)
    assert_same_composite(remote, local)

    summary = stream_composite(items, geobox, tmp_path / "c.tif", chunk=256, scheduler=cluster)
    with rasterio.open(tmp_path / "c.tif") as src:
        np.testing.assert_array_equal(src.read(2), local.count)
        np.testing.assert_array_equal(src.read(1) == -9999, local.count == 0)
    assert summary.valid_fraction == pytest.approx(local.valid_fraction)


def test_workers_read_flaky_http_with_the_gdal_settings(sample_area, cluster):
    """The retry settings travel with the tasks: worker processes survive the 503s too."""
    items, geobox = sample_items_and_grid(sample_area)
    local = build_composite(items, geobox, chunk=256)
    with RangeServer(Path(sample_area["root"]), fail_every=4, fail_budget=20) as server:
        remote = build_composite(served(items, server), geobox, chunk=256, scheduler=cluster, gdal=FAST_RETRIES)
        assert server.failures >= 10
    assert_same_composite(remote, local)


def test_dagster_asset_runs_on_the_cluster_from_the_config(sample_area, cluster, tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    path = write_area_config(sample_area, out, [2024])
    raw = yaml.safe_load(path.read_text())
    raw["compute"] = {"dask_scheduler": cluster, "chunk_size": 256}
    path.write_text(yaml.safe_dump(raw))
    config = load_config(path)
    area = config.areas[0]
    assert area.compute.dask_scheduler == cluster
    build_aoi(area, prepare_districts(area))
    imagery = build_imagery_assets(config)
    composite = next(a for a in imagery if a.key == dg.AssetKey("ndvi_composite"))
    result = dg.materialize([composite], partition_key=area_year_key(area.code, 2024), selection=[composite])
    assert result.success
    meta = result.asset_materializations_for_node("ndvi_composite")[0].metadata
    assert meta["compute"].value == cluster
    assert all(e.passed for e in result.get_asset_check_evaluations() if e.check_name == "ndvi_in_range")
    items, geobox = sample_items_and_grid(sample_area)
    local = build_composite(items, geobox)
    with rasterio.open(area.area_dir / "2024" / "composite" / "ndvi_composite_2024.tif") as src:
        np.testing.assert_array_equal(src.read(2), local.count)
