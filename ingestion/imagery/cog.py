"""Write and read the composite as a Cloud-Optimised GeoTIFF."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import rasterio

from ingestion.imagery.composite import Composite

NODATA = -9999.0
BAND_NAMES = ("ndvi_median", "valid_observations")


def write_composite_cog(composite: Composite, path: Path) -> Path:
    """Write a 2-band float32 COG (band 1 median NDVI, band 2 clear-observation count; nodata -9999).

    Tiled 256 px, DEFLATE, overviews. Written to a temporary file then renamed, so a failed write leaves
    any previous file untouched.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.tif")
    ndvi = np.where(np.isnan(composite.ndvi), np.float32(NODATA), composite.ndvi).astype(np.float32)
    count = composite.count.astype(np.float32)
    gbox = composite.geobox
    profile = {
        "driver": "COG", "dtype": "float32", "count": 2, "width": gbox.width, "height": gbox.height,
        "crs": str(gbox.crs), "transform": gbox.transform, "nodata": NODATA, "compress": "deflate",
        "blocksize": 256, "overview_resampling": "nearest",
    }
    with rasterio.open(tmp, "w", **profile) as dst:
        dst.write(ndvi, 1)
        dst.write(count, 2)
        for i, name in enumerate(BAND_NAMES, start=1):
            dst.set_band_description(i, name)
    os.replace(tmp, path)
    return path
