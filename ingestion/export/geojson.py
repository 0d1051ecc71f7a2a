"""Write district statistics as GeoJSON (EPSG:4326), rounded for publication, atomically."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd

from ingestion.atomic import published
from ingestion.export import inputs_digest

ROUNDED = ("min_ndvi", "max_ndvi", "mean_ndvi", "stddev_ndvi", "p10_ndvi", "p25_ndvi", "median_ndvi", "p75_ndvi",
           "p90_ndvi", "mean_ndvi_change_baseline", "median_ndvi_change_baseline")
#: Shares (0..1), their changes and every trend slope (per year, small numbers) keep 4 decimals.
FINE_DECIMALS = 4
#: Part of every file's inputs digest: change it with any change to how a frame is rendered, so that files
#: written before are rendered again.
WRITER_VERSION = 1


def _fine(column: str) -> bool:
    return column.startswith("green_share_") or column.endswith("_trend")


def write_stats_geojson(stats: gpd.GeoDataFrame, path: Path, decimals: int = 2) -> Path:
    """Reproject to EPSG:4326, round NDVI statistics to ``decimals`` (valid_fraction to 4), write ``path``.

    Written to a temporary file and renamed, so readers never see a half-written file and a failure keeps
    the previous one. When the content equals the existing file's, the file is left untouched (re-runs
    change nothing, not even the modification time). A file rendered from the same frame and decimals and
    untouched since is not even rendered again (:mod:`ingestion.export.inputs_digest`).
    """
    digest = inputs_digest.frame_digest(stats, WRITER_VERSION, decimals)
    if inputs_digest.unchanged(path, digest):
        return path
    out = stats.to_crs("EPSG:4326").copy()
    for col in ROUNDED:
        if col in out:
            out[col] = pd.to_numeric(out[col]).round(decimals)
    for col in [c for c in out.columns if _fine(c)]:
        out[col] = pd.to_numeric(out[col]).round(FINE_DECIMALS)
    if "valid_fraction" in out:
        out["valid_fraction"] = pd.to_numeric(out["valid_fraction"]).round(4)
    if "updated_at" in out:
        out["updated_at"] = out["updated_at"].astype(str)
    for col in ("year", "source_year", "pixel_count", "baseline_year", "trend_years", "trend_first_year",
                "trend_last_year"):
        if col in out:
            out[col] = out[col].astype("Int64")
    with published(path, keep_if_equal=True) as tmp:
        out.to_file(tmp, driver="GeoJSON", RFC7946="YES", WRITE_NAME="NO")
    inputs_digest.remember(path, digest)
    return path
