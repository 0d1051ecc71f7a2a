"""A districts file is parsed once per process while its files are unchanged (and each area's districts are
selected and checked once), and read anew once any of them changes (a rewrite, or only a shapefile's .dbf)."""

from __future__ import annotations

import shutil

import geopandas as gpd
from shapely.geometry import box

from ingestion.config import DistrictsConfig
from ingestion.vector import read_districts


def _districts(names: list[str], area: list[str]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"district_code": [f"D{i}" for i in range(len(names))], "district_name": names,
                             "gm": area}, geometry=[box(i * 100, 0, i * 100 + 100, 100) for i in range(len(names))],
                            crs="EPSG:28992")


def test_each_area_of_a_file_reads_its_rows_and_a_rewrite_is_seen(tmp_path):
    path = tmp_path / "districts.gpkg"
    _districts(["a", "b", "c"], ["G1", "G1", "G2"]).to_file(path)
    g1 = read_districts(DistrictsConfig(path=str(path), area_column="gm", area_value="G1"))
    g2 = read_districts(DistrictsConfig(path=str(path), area_column="gm", area_value="G2"))
    assert (list(g1.district_name), list(g2.district_name)) == (["a", "b"], ["c"])
    # a caller's edit does not reach the next read, whether its frame was read or came from the process's cache
    for _ in range(2):
        g1.loc[0, "district_name"] = "changed by a caller"
        g1 = read_districts(DistrictsConfig(path=str(path), area_column="gm", area_value="G1"))
        assert list(g1.district_name) == ["a", "b"]

    _districts(["a", "b", "c", "d"], ["G1", "G1", "G1", "G2"]).to_file(path, mode="w")
    assert list(read_districts(DistrictsConfig(path=str(path), area_column="gm", area_value="G1")).district_name) \
        == ["a", "b", "c"]


def test_a_shapefile_whose_dbf_alone_changed_is_read_anew(tmp_path):
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    _districts(["old 1", "old 2"], ["G", "G"]).to_file(tmp_path / "one" / "districts.shp")
    _districts(["new 1", "new 2"], ["G", "G"]).to_file(tmp_path / "two" / "districts.shp")
    # shapefile field names have at most 10 characters
    config = DistrictsConfig(path=str(tmp_path / "one" / "districts.shp"), code_column="district_c",
                             name_column="district_n")
    assert list(read_districts(config).district_name) == ["old 1", "old 2"]
    shutil.copyfile(tmp_path / "two" / "districts.dbf", tmp_path / "one" / "districts.dbf")
    assert list(read_districts(config).district_name) == ["new 1", "new 2"]
