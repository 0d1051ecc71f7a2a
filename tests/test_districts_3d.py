"""A districts file with Z coordinates (a common 3D export) is read as 2D, says so, and stages into PostGIS."""

from __future__ import annotations

import logging

import geopandas as gpd
import psycopg
import shapely

from ingestion.config import DistrictsConfig
from ingestion.load.postgis import stage_districts
from ingestion.vector import read_districts
from tests.pipeline_env import reset_database


def test_z_districts_are_read_as_2d_with_a_log_line_and_stage(sample_area, database_url, tmp_path, caplog):
    flat = gpd.read_file(sample_area["districts"])
    lifted = flat.set_geometry(shapely.force_3d(flat.geometry.values, z=31.5))
    path = tmp_path / "districts_3d.gpkg"
    lifted.to_file(path, driver="GPKG")
    assert gpd.read_file(path).geometry.has_z.all()  # the file really is 3D

    with caplog.at_level(logging.INFO, logger="ingestion.vector"):
        districts = read_districts(DistrictsConfig(path=str(path)))
    assert f"districts file {path}: {len(flat)} of {len(flat)} geometries have Z coordinates; reading them as 2D" \
        in caplog.text
    assert not districts.geometry.has_z.any()
    assert districts.geometry.normalize().geom_equals_exact(flat.geometry.normalize(), 1e-9).all()

    reset_database(database_url)
    with psycopg.connect(database_url) as conn:
        rows, _ = stage_districts(conn, "flat", districts)  # failed before: "Geometry has Z dimension"
        dims = conn.execute("select distinct st_ndims(geometry) from raw.districts_staged where area_code = 'flat'")
        assert (rows, dims.fetchall()) == (len(flat), [(2,)])
