"""The sample generator paints any districts file, e.g. Enschede's, with published district means."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.features import rasterize

from ingestion.cli.sample_data import _reference_means
from ingestion.sample.generator import generate


def test_enschede_districts_painted_with_the_notebooks_2024_means(shared_data, tmp_path):
    districts_path = shared_data / "enschede" / "enschede_districts.gpkg"
    reference_file = shared_data / "reference" / "zonal_stats_2024.geojson"
    reference = _reference_means([reference_file])
    manifest = generate(tmp_path, [2024], districts_path=districts_path, reference_means=reference)
    assert manifest["crs"] == "EPSG:28992"
    assert not (tmp_path / "districts.gpkg").exists()  # the given file is used as it is
    districts = gpd.read_file(districts_path)
    with rasterio.open(tmp_path / "truth" / "ndvi_true_2024.tif") as src:
        truth = src.read(1)
        zones = rasterize([(g, i + 1) for i, g in enumerate(districts.geometry)], out_shape=truth.shape,
                          transform=src.transform, all_touched=False, dtype="int32")
    assert len(reference[2024]) == len(districts) == 10
    for i, code in enumerate(districts["district_code"]):
        assert float(truth[zones == i + 1].mean()) == pytest.approx(reference[2024][code], abs=1e-4)
    items = json.loads((tmp_path / "truth" / "truth.json").read_text())["years"]["2024"]["items"]
    assert len(items) == 8 and any(i.endswith("_1_L2A") for i in items)
    assert np.isfinite(truth).all()
