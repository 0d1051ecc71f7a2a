"""Where an area's outputs live, read by the pipeline's steps and by the update checks (:mod:`ingestion.observe`,
:mod:`ingestion.updates`) alike: ``<output_dir>/<area>/aoi/aoi_boundary.gpkg`` and
``<output_dir>/<area>/{year}/composite/ndvi_composite_{year}.tif``."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
from shapely.geometry.base import BaseGeometry

from ingestion.config import AreaConfig


def composite_path(cfg: AreaConfig, year: int) -> Path:
    """The year's composite COG (EPSG of the area's working CRS, 10 m by default)."""
    return cfg.area_dir / str(year) / "composite" / f"ndvi_composite_{year}.tif"


def aoi_path(cfg: AreaConfig) -> Path:
    """The area's AOI GeoPackage (layer ``aoi``, in the area's working CRS)."""
    return cfg.area_dir / "aoi" / "aoi_boundary.gpkg"


def read_aoi(cfg: AreaConfig) -> tuple[BaseGeometry, str]:
    """The stored AOI geometry and its CRS (materialise ``aoi_boundary`` first)."""
    path = aoi_path(cfg)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: materialise the aoi_boundary asset first")
    aoi = gpd.read_file(path)
    return aoi.union_all(), aoi.crs.to_string()
