"""Encode numpy blocks as PostGIS raster WKB (in-db bands), so loading needs neither raster2pgsql nor
GDAL drivers enabled in the server (``postgis.gdal_enabled_drivers`` is a superuser setting)."""

from __future__ import annotations

import struct

import numpy as np

# PostGIS pixel types (raster/rt_core/librtcore.h)
_PIXTYPE = {np.dtype("uint8"): (4, "B"), np.dtype("uint16"): (6, "H"), np.dtype("int32"): (7, "i"),
            np.dtype("float32"): (10, "f"), np.dtype("float64"): (11, "d")}
_HAS_NODATA = 0x40


def raster_wkb(bands: list[np.ndarray], nodata: float, transform: tuple[float, float, float, float],
               srid: int) -> bytes:
    """Little-endian WKB of a raster with ``bands`` (2-D arrays of one dtype and shape).

    ``transform`` is (upper-left x, upper-left y, pixel width, pixel height) in the CRS of ``srid``;
    pixel height is positive (north-up rasters use a negative scale Y internally).
    """
    height, width = bands[0].shape
    if width > 65535 or height > 65535:
        raise ValueError("a raster tile is at most 65535 pixels wide and high")
    ulx, uly, xres, yres = transform
    out = [struct.pack("<BHHddddddiHH", 1, 0, len(bands), xres, -yres, ulx, uly, 0.0, 0.0, srid, width, height)]
    for band in bands:
        code, fmt = _PIXTYPE[band.dtype]
        out.append(struct.pack("<B" + fmt, code | _HAS_NODATA, nodata))
        out.append(np.ascontiguousarray(band).astype(band.dtype.newbyteorder("<"), copy=False).tobytes())
    return b"".join(out)
