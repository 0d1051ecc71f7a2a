"""The common target grid of an area: working CRS, square pixels, bounds aligned to the pixel size."""

from __future__ import annotations

import math

from odc.geo.geobox import GeoBox
from shapely.geometry.base import BaseGeometry

DEFAULT_RESOLUTION = 10.0


def target_geobox(aoi: BaseGeometry, crs: str, resolution: float = DEFAULT_RESOLUTION) -> GeoBox:
    """GeoBox covering ``aoi`` (in ``crs``, metres) with bounds snapped outwards to multiples of ``resolution``.

    Every scene and every year of an area is read onto this same grid, so pixels line up across years.
    """
    if resolution <= 0:
        raise ValueError(f"resolution must be positive, got {resolution}")
    if aoi.is_empty:
        raise ValueError("the area of interest is empty")
    minx, miny, maxx, maxy = aoi.bounds
    bounds = (math.floor(minx / resolution) * resolution, math.floor(miny / resolution) * resolution,
              math.ceil(maxx / resolution) * resolution, math.ceil(maxy / resolution) * resolution)
    return GeoBox.from_bbox(bounds, crs=crs, resolution=resolution)
