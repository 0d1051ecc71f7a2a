"""Write district statistics as GeoJSON (EPSG:4326), rounded for publication, atomically."""

from __future__ import annotations

import os
from pathlib import Path

import geopandas as gpd
import pandas as pd

ROUNDED = ("min_ndvi", "max_ndvi", "mean_ndvi", "stddev_ndvi")


def write_stats_geojson(stats: gpd.GeoDataFrame, path: Path, decimals: int = 2) -> Path:
    """Reproject to EPSG:4326, round NDVI statistics to ``decimals`` (valid_fraction to 4), write ``path``.

    Written to a temporary file and renamed, so readers never see a half-written file and a failure keeps
    the previous one.
    """
    out = stats.to_crs("EPSG:4326").copy()
    for col in ROUNDED:
        if col in out:
            out[col] = pd.to_numeric(out[col]).round(decimals)
    if "valid_fraction" in out:
        out["valid_fraction"] = pd.to_numeric(out["valid_fraction"]).round(4)
    if "updated_at" in out:
        out["updated_at"] = out["updated_at"].astype(str)
    for col in ("year", "source_year", "pixel_count"):
        if col in out:
            out[col] = out[col].astype("Int64")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    out.to_file(tmp, driver="GeoJSON", RFC7946="YES", WRITE_NAME="NO")
    os.replace(tmp, path)
    return path
