"""Skip rendering an output again when the inputs it was rendered from have not changed.

The latest export brings every year's GeoJSON to the current districts (``pipeline.refresh_yearly_exports``).
Rendering a year of 14,000 districts (reprojection, rounding, GDAL's write) takes about 1 s, and the rendered
file nearly always equals the one on disk: at every latest export, for every year, and for the year the same
run has just written. So each written file gets a small sidecar, ``.<name>.inputs.json`` in its folder, that
records a digest of what it was rendered from and the file's identity (inode, size, modification time) when
it was written. A file whose sidecar holds the same digest and whose identity is unchanged is left alone
without rendering; anything else (no sidecar, another digest, a file replaced or edited since) renders as
before, and the content comparison still keeps an equal file untouched.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import geopandas as gpd
import pandas as pd

from ingestion.atomic import write_text


def frame_digest(frame: gpd.GeoDataFrame, *settings: object) -> str:
    """SHA-256 (hex) of ``frame``'s columns, dtypes, values and geometries (WKB, with the CRS) and of
    ``settings`` (e.g. a writer version and the decimals), in column and row order: equal digests mean the
    same rendering."""
    digest = hashlib.sha256()
    digest.update(repr((settings, [(str(c), str(t)) for c, t in frame.dtypes.items()])).encode())
    digest.update((frame.crs.to_wkt() if frame.crs is not None else "").encode())
    for column in frame.columns:
        values = frame[column]
        if isinstance(values, gpd.GeoSeries):
            digest.update(b"".join(b"" if w is None else w for w in values.to_wkb()))
        else:
            digest.update(pd.util.hash_pandas_object(values, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def sidecar(path: Path) -> Path:
    """Where the digest of ``path``'s inputs is kept: ``.<name>.inputs.json`` beside it."""
    return path.with_name(f".{path.name}.inputs.json")


def _identity(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_ino, stat.st_size, stat.st_mtime_ns]


def unchanged(path: Path, digest: str) -> bool:
    """Whether ``path`` is the file rendered from inputs with ``digest``, untouched since it was written."""
    try:
        record = json.loads(sidecar(path).read_text(encoding="utf-8"))
        return record.get("digest") == digest and record.get("file") == _identity(path)
    except (OSError, ValueError, AttributeError):
        return False


def remember(path: Path, digest: str) -> None:
    """Record that ``path``, as it is now, was rendered from inputs with ``digest`` (the sidecar is only
    written when what it records changes)."""
    text = json.dumps({"digest": digest, "file": _identity(path)})
    side = sidecar(path)
    try:
        if side.read_text(encoding="utf-8") == text:
            return
    except OSError:
        pass
    write_text(side, text)
