"""Where an area's outputs live, read by the pipeline's steps and by the update checks (:mod:`ingestion.observe`,
:mod:`ingestion.updates`) alike: ``<output_dir>/<area>/aoi/aoi_boundary.gpkg`` and
``<output_dir>/<area>/{year}/composite/ndvi_composite_{year}.tif``."""

from __future__ import annotations

import threading
from pathlib import Path

import geopandas as gpd
from shapely.geometry.base import BaseGeometry

from ingestion.config import AreaConfig
from ingestion.vector import file_signature


def composite_path(cfg: AreaConfig, year: int) -> Path:
    """The year's composite COG (EPSG of the area's working CRS, 10 m by default)."""
    return cfg.area_dir / str(year) / "composite" / f"ndvi_composite_{year}.tif"


def aoi_path(cfg: AreaConfig) -> Path:
    """The area's AOI GeoPackage (layer ``aoi``, in the area's working CRS)."""
    return cfg.area_dir / "aoi" / "aoi_boundary.gpkg"


#: The last read of each AOI file in this process, keyed by :func:`ingestion.vector.file_signature` (size,
#: modification time and inode of the GeoPackage and its -wal): a batch reads an area's AOI once per year and per
#: update check, and a GeoPackage read costs about 10 ms. The AOI is published by an atomic rename, so a rewritten
#: file is a new inode and is read again.
_AOIS: dict[Path, tuple[tuple, BaseGeometry, str]] = {}
_AOIS_LOCK = threading.Lock()


def read_aoi(cfg: AreaConfig) -> tuple[BaseGeometry, str]:
    """The stored AOI geometry (the area's working CRS) and that CRS (materialise ``aoi_boundary`` first)."""
    path = aoi_path(cfg)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: materialise the aoi_boundary asset first")
    signature = file_signature(path)
    with _AOIS_LOCK:
        cached = _AOIS.get(path)
    if cached is not None and cached[0] == signature:
        return cached[1], cached[2]
    aoi = gpd.read_file(path)
    geometry, crs = aoi.union_all(), aoi.crs.to_string()
    with _AOIS_LOCK:
        _AOIS[path] = (signature, geometry, crs)
    return geometry, crs
