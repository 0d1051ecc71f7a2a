"""Small geometry helpers shared by sources, vector readers and exports."""

from __future__ import annotations

import numpy as np
import shapely
from pyproj import CRS, Transformer
from shapely.geometry.base import BaseGeometry


def to_wgs84(geom: BaseGeometry, crs: CRS | str) -> BaseGeometry:
    """``geom`` from ``crs`` to EPSG:4326 (lon, lat order), densified every 100 m so long edges stay faithful."""
    transformer = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    dense = shapely.segmentize(geom, 100.0) if CRS(crs).is_projected else geom
    return shapely.transform(dense, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))
