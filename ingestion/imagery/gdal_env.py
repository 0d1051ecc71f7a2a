"""GDAL settings for reading COGs, local or over HTTP(S): the same options in the client and on every worker.

The options travel with every block task (see ``ingestion.imagery.blocks``) and are applied around its reads
with ``rasterio.Env``, so a Dask worker that joins late, or one that never saw a plugin, reads with the same
settings. ``configure_client`` also applies them to odc-stac loads in the client process.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import odc.stac

#: Cloud defaults: no directory listing on open, retries with exponential backoff on 429/5xx, merged
#: consecutive range requests, and a per-process block cache (MB) and curl cache (bytes).
DEFAULT_GDAL_OPTIONS: dict[str, str | int] = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_HTTP_MAX_RETRY": "5",
    "GDAL_HTTP_RETRY_DELAY": "0.5",  # seconds, doubled by GDAL on each retry
    "GDAL_HTTP_RETRY_CODES": "429,500,502,503,504",
    "GDAL_HTTP_TIMEOUT": "60",
    "GDAL_HTTP_CONNECTTIMEOUT": "15",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_MULTIPLEX": "YES",
    # A window's tiles one request after another, through the curl cache: GDAL's parallel multi-range reads
    # bypass that cache, so a tile two blocks need was fetched twice (measured: 75 tile fetches for 55 tiles,
    # 1.36x the bytes; SERIAL: each tile once). Reads still overlap across files (compute.io_concurrency).
    "GDAL_HTTP_MULTIRANGE": "SERIAL",
    "GDAL_INGESTED_BYTES_AT_OPEN": "32768",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.TIF,.TIFF",
    "CPL_VSIL_CURL_CACHE_SIZE": "268435456",  # fetched bytes kept for the blocks that need them next
    "GDAL_CACHEMAX": 64,  # MB; handed to rasterio in bytes (see gdal_options)
}
# GDAL sizes its process-wide /vsicurl cache once, at the process's first HTTP read, from the value then in
# effect; a later rasterio.Env does not resize it. A first read made without these options (a caller passing
# none) left GDAL's 16 MB for the whole process, and composites then fetched tiles up to 6 times. As an
# environment variable, read when no Env sets the option, the default holds whoever reads first; so a
# per-area CPL_VSIL_CURL_CACHE_SIZE takes effect only through this variable, set before the process starts.
os.environ.setdefault("CPL_VSIL_CURL_CACHE_SIZE", str(DEFAULT_GDAL_OPTIONS["CPL_VSIL_CURL_CACHE_SIZE"]))

#: Below this, a GDAL_CACHEMAX value is megabytes, as GDAL itself reads the option; from it on, bytes.
_CACHEMAX_BYTES_FROM = 100_000


def gdal_options(overrides: Mapping[str, Any] | None = None) -> dict[str, str | int]:
    """The defaults above updated with ``overrides`` (GDAL config option names; values as strings, except
    ``GDAL_CACHEMAX``: megabytes, or bytes from 100,000 on, as GDAL reads it).

    ``GDAL_CACHEMAX`` comes out as an integer number of bytes: rasterio hands an integer to
    ``GDALSetCacheMax64``, which takes bytes, so 256 would be a 256-byte block cache (every tile decompressed
    again for each read; measured: the offset check over ten times slower).
    """
    opts = dict(DEFAULT_GDAL_OPTIONS)
    for key, value in (overrides or {}).items():
        if not isinstance(key, str) or not key.isupper():
            raise ValueError(f"GDAL option names are upper case like GDAL_HTTP_MAX_RETRY, got {key!r}")
        if isinstance(value, bool):
            value = "YES" if value else "NO"
        opts[key] = value if key == "GDAL_CACHEMAX" else str(value)
    opts["GDAL_CACHEMAX"] = _cache_bytes(opts["GDAL_CACHEMAX"])
    return opts


def _cache_bytes(value: Any) -> int:
    """GDAL_CACHEMAX in bytes from megabytes (below 100,000) or bytes."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"GDAL_CACHEMAX must be a whole number of megabytes, got {value!r}") from None
    if number <= 0:
        raise ValueError(f"GDAL_CACHEMAX must be positive, got {value!r}")
    return number * 1024 * 1024 if number < _CACHEMAX_BYTES_FROM else number


def configure_client(options: Mapping[str, str | int]) -> None:
    """Apply ``options`` to odc-stac/rasterio reads started in this process (the Dask client)."""
    odc.stac.configure_rio(cloud_defaults=True, **options)
