"""Bad districts files and bad configuration: each error names the file, layer, field or value."""

from __future__ import annotations

import logging

import geopandas as gpd
import pytest
import yaml
from shapely.geometry import MultiPolygon, Polygon, box

from ingestion.areas import record_split_areas
from ingestion.config import ConfigError, DistrictsConfig, load_config
from ingestion.paths import PROJECT_ROOT
from ingestion.vector import VectorInputError, read_districts
from ingestion.years import InvalidYearError, validate_year


def _write(tmp_path, gdf, name="districts.gpkg", layer="districts"):
    path = tmp_path / name
    gdf.to_file(path, layer=layer, driver="GPKG")
    return str(path)


def _districts(codes, crs="EPSG:28992", geoms=None):
    geoms = geoms or [MultiPolygon([box(i * 100, 0, i * 100 + 90, 90)]) for i in range(len(codes))]
    return gpd.GeoDataFrame({"district_code": codes, "district_name": [f"n{i}" for i in range(len(codes))]},
                            geometry=geoms, crs=crs)


def test_missing_file(tmp_path):
    with pytest.raises(VectorInputError, match=f"districts file {tmp_path}/nope.gpkg does not exist"):
        read_districts(DistrictsConfig(path=str(tmp_path / "nope.gpkg")))


def test_unreadable_file(tmp_path):
    bad = tmp_path / "garbage.gpkg"
    bad.write_text("this is not a geopackage")
    with pytest.raises(VectorInputError, match="garbage.gpkg cannot be read as vector data"):
        read_districts(DistrictsConfig(path=str(bad)))


def test_wrong_layer_lists_layers(tmp_path):
    path = _write(tmp_path, _districts(["A", "B"]))
    with pytest.raises(VectorInputError, match="has no layer 'wijken'; layers: districts"):
        read_districts(DistrictsConfig(path=path, layer="wijken"))


def test_empty_layer(tmp_path):
    path = _write(tmp_path, _districts(["A"]).iloc[0:0])
    with pytest.raises(VectorInputError, match="has no features"):
        read_districts(DistrictsConfig(path=path))


def test_no_crs(tmp_path):
    path = _write(tmp_path, _districts(["A"]).set_crs(None, allow_override=True))
    with pytest.raises(VectorInputError, match="has no CRS; assign one"):
        read_districts(DistrictsConfig(path=path))


def test_missing_code_column_lists_columns(tmp_path):
    path = _write(tmp_path, _districts(["A"]).rename(columns={"district_code": "wijkcode"}))
    with pytest.raises(VectorInputError, match=r"no column 'district_code' \(columns: wijkcode, district_name\)"):
        read_districts(DistrictsConfig(path=path))


def test_duplicate_and_empty_codes(tmp_path):
    with pytest.raises(VectorInputError, match=r"duplicate 'district_code' values \['B'\]"):
        read_districts(DistrictsConfig(path=_write(tmp_path, _districts(["A", "B", "B"]), "dup.gpkg")))
    with pytest.raises(VectorInputError, match=r"empty 'district_code' in rows \[1\]"):
        read_districts(DistrictsConfig(path=_write(tmp_path, _districts(["A", " ", "C"]), "empty.gpkg")))


def test_invalid_geometry_is_repaired_with_a_warning_naming_it(tmp_path, caplog):
    bowtie = Polygon([(0, 0), (100, 100), (100, 0), (0, 100), (0, 0)])
    gdf = _districts(["OK", "BOW"], geoms=[MultiPolygon([box(200, 0, 300, 100)]), bowtie])
    with caplog.at_level(logging.WARNING):
        out = read_districts(DistrictsConfig(path=_write(tmp_path, gdf)))
    assert "repaired invalid geometries" in caplog.text and "BOW" in caplog.text and "'OK'" not in caplog.text
    assert out.geometry.is_valid.all()
    assert out.geometry.iloc[1].geom_type == "MultiPolygon"
    assert out.geometry.iloc[1].area == pytest.approx(5000)  # two triangles of the bow-tie


def _config(tmp_path, **imagery):
    raw = {"districts": {"path": "d.gpkg"}, "years": [2024],
           "imagery": {"source": "local-stac", "options": {"catalog_path": "c.json"}, **imagery}}
    return raw


@pytest.mark.parametrize(("change", "message"), [
    ({"imagery": {"source": "sentinel-hub"}}, r"imagery.source: unknown plugin .sentinel-hub.; installed: "),
    ({"years": [2013]}, r"years.0: 2013 is outside 2015\.\."),
    ({"years": ["2024; drop table x"]}, r"'2024; drop table x' is not a year"),
    ({"years": []}, r"years: must have at least 1 item\(s\), got \[\]"),
    ({"years": [2024, True]}, r"years.1: True is not a year"),
    ({"imagery": {"source": "local-stac", "cloud_cover_max": 150}},
     r"imagery.cloud_cover_max: input should be less than or equal to 100, got 150"),
    ({"imagery": {"source": "local-stac", "cloud_cover_max": True}}, r"imagery.cloud_cover_max.*got True"),
    ({"imagery": {"source": "local-stac", "cloud_cover_max": -1}},
     "imagery.cloud_cover_max: input should be greater than 0, got -1"),
    ({"imagery": {"source": "local-stac", "on_bad_item": "skip"}},
     r"imagery.on_bad_item: input should be 'drop' or 'fail', got 'skip'"),
    ({"imagery": {"source": "local-stac", "resolution": 0}},
     r"imagery.resolution: input should be greater than 0, got 0"),
    ({"imagery": {"source": "local-stac", "masked_scl_classes": [3, "clouds"]}},
     r"masked_scl_classes: unknown SCL class 'clouds'"),
    ({"imagery": {"source": "local-stac", "months": [9, 4]}},
     r"imagery.months: must be \[first, last\] with first <= last, got \[9, 4\]"),
    ({"imagery": {"source": "local-stac", "months": [0, 4]}},
     r"imagery.months.0: input should be greater than or equal to 1, got 0"),
    ({"exports": {"scheme": "Magic"}}, r"exports.scheme: input should be 'FisherJenks', .*got 'Magic'"),
    ({"exports": {"k": 1}}, "exports.k: input should be greater than or equal to 2, got 1"),
    ({"exports": {"decimals": 9}}, "exports.decimals: input should be less than or equal to 8, got 9"),
    ({"exports": {"basemap_url": "ftp://x/{z}/{x}/{y}"}}, "exports.basemap_url: must be an http\\(s\\) URL, got 'ftp:"),
    ({"exports": {"basemap_url": "https://x/{z}/{x}"}}, r"exports.basemap_url: must contain \{z\}, \{x\} and \{y\}"),
    ({"area": "bad code!"}, r"area: must be an area code: letters, digits, '_' or '-', at most 63, got 'bad code!'"),
    ({"colour": 1}, "colour: unknown key"),
    # unknown keys at any depth name the key path and the nearest valid key
    ({"imagery": {"sourse": "local-stac"}}, r"imagery.sourse: unknown key; did you mean 'source'\?"),
    ({"imagery": {"source": "local-stac", "cloud_cover_mx": 50}},
     r"imagery.cloud_cover_mx: unknown key; did you mean 'cloud_cover_max'\?"),
    ({"districts": {"path": "d.gpkg", "code_colum": "code"}},
     r"districts.code_colum: unknown key; did you mean 'code_column'\?"),
    ({"exports": {"schem": "Quantiles"}}, r"exports.schem: unknown key; did you mean 'scheme'\?"),
    ({"exports": {"kk": 4}}, r"exports.kk: unknown key; did you mean 'k'\?"),
    ({"imagery": {"source": "local-stac", "options": {"catalog_pth": "c.json"}}},
     r"imagery.options.catalog_pth: unknown option of plugin 'local-stac'; did you mean 'catalog_path'\?"),
    ({"districts": {}}, "districts.path: required"),
    ({"compute": {"dask_scheduler": "localhost"}},
     "compute.dask_scheduler: must be an address like tcp://host:8786, got 'localhost'"),
    ({"compute": {"chunk_size": 1000}}, "compute.chunk_size: input should be a multiple of 256, got 1000"),
    ({"compute": {"io_concurrency": 0}}, "compute.io_concurrency: input should be greater than or equal to 1, got 0"),
    ({"compute": {"gdal_options": {"gdal_http_max_retry": 3}}},
     "compute.gdal_options.gdal_http_max_retry: must be a GDAL option name in upper case"),
    ({"compute": {"dask_schedular": "tcp://h:8786"}}, "compute.dask_schedular: unknown key"),
    # green-share classes and the baseline year
    ({"statistics": {"green_thresholds": [{"name": "Green Area", "ndvi": 0.3}]}},
     r"statistics.green_thresholds.0.name: must be lower-case letters, digits or '_', .*got 'Green Area'"),
    ({"statistics": {"green_thresholds": [{"name": "green", "ndvi": 1.5}]}},
     r"statistics.green_thresholds.0.ndvi: input should be less than or equal to 1, got 1.5"),
    ({"statistics": {"green_thresholds": [{"name": "a", "ndvi": 0.2}, {"name": "a", "ndvi": 0.5}]}},
     "threshold names must be unique"),
    ({"statistics": {"green_thresholds": [{"name": "a", "ndvi": -0.999}, {"name": "b", "ndvi": 0.5}]}},
     r"threshold 0.5 \(b\) cannot be counted exactly"),
    ({"statistics": {"green_treshold": []}},
     r"statistics.green_treshold: unknown key; did you mean 'green_thresholds'"),
    ({"statistics": {"baseline_year": 2016}}, r"statistics.baseline_year 2016 is not one of the area's years"),
])
def test_bad_config_values_name_file_and_field(tmp_path, change, message):
    raw = _config(tmp_path)
    raw.update(change)
    path = tmp_path / "area.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=message) as err:
        load_config(path)
    assert str(path) in str(err.value)


def test_config_paths_resolve_relative_to_file_and_env(tmp_path, monkeypatch):
    monkeypatch.setenv("NDVI_DATA_DIR", str(tmp_path / "out"))
    raw = _config(tmp_path)
    raw["imagery"]["options"]["catalog_path"] = "${NDVI_DATA_DIR}/cat/catalog.json"
    path = tmp_path / "cfg" / "area.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(raw))
    cfg = load_config(path).areas[0]
    assert cfg.districts.path == str(tmp_path / "cfg" / "d.gpkg")
    assert cfg.imagery.options["catalog_path"] == str(tmp_path / "out" / "cat" / "catalog.json")
    assert cfg.output_dir == tmp_path / "out"
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_year_validation():
    assert validate_year("2024") == 2024
    for bad in ("2024; drop table x", 2024.5, True, None, "1999", 3000):
        with pytest.raises(InvalidYearError, match="year: .* (is not a year|is outside 2015)"):
            validate_year(bad)


def test_json_schema_for_editors_is_current():
    """The committed schema equals what ``ndvi-config-schema`` prints, and forbids unknown keys at any depth."""
    import json

    from ingestion.config import config_json_schema

    committed = json.loads((PROJECT_ROOT / "dagster_project" / "configs" / "area.schema.json").read_text())
    assert committed == json.loads(json.dumps(config_json_schema())), "run: ndvi-config-schema > .../area.schema.json"
    assert all(d["additionalProperties"] is False for d in committed["$defs"].values())
    assert {"area", "districts", "years", "imagery", "exports"} <= set(committed["$defs"]["Area"]["properties"])
    many = committed["anyOf"][1]
    assert many["required"] == ["areas"] and many["additionalProperties"] is False


def test_many_areas_as_a_list_with_defaults_merged_key_by_key(tmp_path):
    raw = {"years": [2024], "imagery": {"source": "local-stac", "cloud_cover_max": 10,
                                        "options": {"catalog_path": "c.json"}},
           "areas": [{"area": "north", "districts": {"path": "n.gpkg"}},
                     {"area": "south", "districts": {"path": "s.gpkg"}, "years": [2019],
                      "imagery": {"cloud_cover_max": 20}}]}
    path = tmp_path / "areas.yaml"
    path.write_text(yaml.safe_dump(raw))
    config = load_config(path)
    assert config.codes == ("north", "south") and config.years == (2019, 2024)
    north, south = config.areas
    assert (north.imagery.cloud_cover_max, south.imagery.cloud_cover_max) == (10, 20)
    assert south.imagery.source == "local-stac" and south.imagery.options["catalog_path"] == str(tmp_path / "c.json")
    assert south.years == (2019,) and south.area_dir == north.output_dir / "south"

    raw["areas"][1]["imagery"] = {"sourse": "x"}
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"areas\[1\].imagery.sourse: unknown key; did you mean 'source'\?"):
        load_config(path)
    raw["areas"][1] = {"area": "north", "districts": {"path": "s.gpkg"}}
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="area codes must be unique; repeated: north"):
        load_config(path)


def test_one_districts_file_split_into_areas_by_a_column(tmp_path):
    gdf = _districts(["A1", "A2", "B1"])
    gdf["gm_code"] = ["GM01", "GM01", "GM02"]
    districts = _write(tmp_path, gdf)
    raw = {"districts": {"path": districts, "area_column": "gm_code"}, "years": [2024],
           "imagery": {"source": "local-stac", "options": {"catalog_path": "c.json"}}}
    path = tmp_path / "national.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"districts.area_column: the areas of .* are not recorded yet; run "
                                          r"`ndvi-pipeline areas --config "):
        load_config(path)  # loading never reads the districts file
    record_split_areas(path)
    config = load_config(path)
    assert config.codes == ("GM01", "GM02")
    assert list(read_districts(config.area("GM01").districts)["district_code"]) == ["A1", "A2"]
    assert list(read_districts(config.area("GM02").districts)["district_code"]) == ["B1"]

    raw["districts"]["areas"] = ["GM02", "GM99"]
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"districts.areas: \['GM99'\] not found in column 'gm_code'"):
        load_config(path)
    raw["districts"]["areas"] = ["GM02"]
    path.write_text(yaml.safe_dump(raw))
    assert load_config(path).codes == ("GM02",)
    raw["districts"] = {"path": districts, "area_column": "gemeente"}
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(VectorInputError, match="has no column 'gemeente'"):
        record_split_areas(path)
