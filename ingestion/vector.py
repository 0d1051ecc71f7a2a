"""Read and validate districts and the area boundary from any OGR-readable file or URL."""

from __future__ import annotations

import functools
import glob
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import pyogrio
import shapely
from shapely.geometry import MultiPolygon
from shapely.geometry.base import BaseGeometry

from ingestion.config.schema import DistrictsConfig

log = logging.getLogger(__name__)


class VectorInputError(ValueError):
    """A districts or boundary file is unusable; the message names the file, layer or column and the fix."""


def _is_url(path: str) -> bool:
    """A URL or a GDAL virtual path (``/vsicurl/...``), not a local file."""
    return "://" in path or path.startswith("/vsi")


def _read(path: str, layer: str | None, what: str, **read_options: Any) -> gpd.GeoDataFrame:
    is_url = _is_url(path)
    if not is_url and not Path(path).exists():
        raise VectorInputError(f"{what} file {path} does not exist; fix the path in the area config")
    try:
        layers = list(_layers(path)) if is_url else list(_local_layers(str(Path(path).resolve()),
                                                                       file_signature(Path(path).resolve())))
    except Exception as exc:  # noqa: BLE001 - any OGR failure means: not a readable vector file
        raise VectorInputError(f"{what} file {path} cannot be read as vector data: {exc}") from None
    if layer is not None and layer not in layers:
        raise VectorInputError(f"{what} file {path} has no layer {layer!r}; layers: {', '.join(layers)}")
    if layer is None and len(layers) > 1:
        log.warning("%s file %s has layers %s; using the first (set 'layer' to choose)", what, path, layers)
    try:
        gdf = _read_whole(path, layer) if not is_url and not read_options else gpd.read_file(path, layer=layer,
                                                                                            **read_options)
    except Exception as exc:  # noqa: BLE001
        raise VectorInputError(f"{what} file {path} (layer {layer or layers[0]!r}) cannot be read: {exc}") from None
    if gdf.empty:
        raise VectorInputError(f"{what} file {path} (layer {layer or layers[0]!r}) has no features")
    if read_options.get("read_geometry") is False:
        return gdf
    if gdf.crs is None:
        raise VectorInputError(f"{what} file {path} has no CRS; assign one (e.g. ogr2ogr -a_srs EPSG:28992)")
    return _as_2d(gdf, what, path)


class _KeptFrames:
    """Frames read once per key while kept (the ``kept`` most recently used), a copy for each caller. ``read``
    runs under the lock, so two threads never read the same key at once."""

    def __init__(self, kept: int) -> None:
        self.kept = kept
        self._frames: OrderedDict[tuple, gpd.GeoDataFrame] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple, read: Callable[[], gpd.GeoDataFrame]) -> gpd.GeoDataFrame:
        with self._lock:
            if key not in self._frames:
                self._frames[key] = read()
                while len(self._frames) > self.kept:
                    self._frames.popitem(last=False)
            self._frames.move_to_end(key)
            return self._frames[key].copy()


#: Whole local files read in this process, by path, layer and the signature of the files behind them: a batch
#: reads one districts file for each of its areas (``districts.area_column``), twice per area (districts, AOI);
#: parsing it each time would cost a province of 342 municipalities × 14,000 buurten minutes.
_WHOLE_FILES = _KeptFrames(4)


def file_signature(path: Path) -> tuple:
    """Name, size, modification time (ns) and inode of every file the dataset is made of: the folder's files
    (a File Geodatabase), else the files sharing its stem (a shapefile's .shp/.dbf/.shx, a GeoPackage's -wal)."""
    files = path.rglob("*") if path.is_dir() else path.parent.glob(glob.escape(path.stem) + ".*")
    stats = ((f, f.stat()) for f in sorted(files) if f.is_file())
    return tuple((str(f), s.st_size, s.st_mtime_ns, s.st_ino) for f, s in stats)


def _layers(path: str) -> tuple[str, ...]:
    return tuple(name for name, _ in pyogrio.list_layers(path))


@functools.lru_cache(maxsize=_WHOLE_FILES.kept)
def _local_layers(path: str, signature: tuple) -> tuple[str, ...]:
    """A local file's layers, listed once while its files are unchanged (``signature``, :func:`file_signature`):
    opening the file to list them took 2.5 ms per area and step of a batch."""
    return _layers(path)


def _read_whole(path: str, layer: str | None) -> gpd.GeoDataFrame:
    """``gpd.read_file(path, layer=layer)``, parsed once while its files are unchanged (a copy each call)."""
    key = (str(Path(path).resolve()), layer, file_signature(Path(path).resolve()))
    return _WHOLE_FILES.get(key, lambda: gpd.read_file(path, layer=layer))


def _as_2d(gdf: gpd.GeoDataFrame, what: str, path: str) -> gpd.GeoDataFrame:
    """Drop Z (and M) coordinates: 3D exports are common, the pipeline and ``raw.*`` are 2D."""
    has_z = gdf.geometry.has_z
    if has_z.any():
        log.info("%s file %s: %d of %d geometries have Z coordinates; reading them as 2D", what, path,
                 int(has_z.sum()), len(gdf))
        gdf = gdf.set_geometry(shapely.force_2d(gdf.geometry.values))
    return gdf


def _repair(gdf: gpd.GeoDataFrame, label_column: str | None, what: str, path: str) -> gpd.GeoDataFrame:
    invalid = ~gdf.geometry.is_valid
    if invalid.any():
        labels = gdf.loc[invalid, label_column].tolist() if label_column else gdf.index[invalid].tolist()
        log.warning("%s file %s: repaired invalid geometries with make_valid: %s", what, path, labels)
        gdf = gdf.copy()
        gdf.loc[invalid, "geometry"] = shapely.make_valid(gdf.loc[invalid, "geometry"].values)
    # keep the polygonal part only (make_valid may return collections with lines)
    gdf["geometry"] = [_as_multipolygon(g) for g in gdf.geometry]
    empty = gdf.geometry.is_empty
    if empty.any():
        labels = gdf.loc[empty, label_column].tolist() if label_column else gdf.index[empty].tolist()
        raise VectorInputError(f"{what} file {path}: features {labels} have no polygon area")
    return gdf


def _as_multipolygon(geom: BaseGeometry | None) -> MultiPolygon:
    if geom is None:
        return MultiPolygon()
    polys = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
    parts = [p for g in polys for p in shapely.get_parts(g)]
    return MultiPolygon(parts)


def area_values(cfg: DistrictsConfig) -> list[str]:
    """The distinct values of ``cfg.area_column`` in the districts file (attributes only), sorted."""
    fields = list(pyogrio.read_info(cfg.path, layer=cfg.layer)["fields"]) if Path(cfg.path).exists() else []
    if fields and cfg.area_column not in fields:
        raise VectorInputError(f"districts file {cfg.path} has no column {cfg.area_column!r} (columns: "
                               f"{', '.join(fields)}); set districts.area_column")
    gdf = _read(cfg.path, cfg.layer, "districts", columns=[cfg.area_column], read_geometry=False)
    values = gdf[cfg.area_column].dropna().astype(str).str.strip()
    return sorted(v for v in values.unique() if v)


#: Districts read from local files in this process, by file signature and by the settings they were read with:
#: the districts step and the AOI step of a batch both read each of its areas (96 areas: 192 reads, each
#: selecting, checking and repairing the area's rows of the whole file).
_DISTRICTS = _KeptFrames(1024)


def read_districts(cfg: DistrictsConfig) -> gpd.GeoDataFrame:
    """Districts as ``district_code`` (text, unique, non-empty), ``district_name``, MultiPolygon geometry,
    in the file's own CRS (only the rows of ``cfg.area_value`` when the file holds many areas). Invalid
    geometries are repaired with a warning naming them. A local file's districts are read once while its files
    are unchanged (a copy each call)."""
    path = Path(cfg.path)
    if _is_url(cfg.path) or not path.exists():
        return _read_districts(cfg)
    key = (str(path.resolve()), file_signature(path.resolve()), cfg.layer, cfg.area_column, cfg.area_value,
           cfg.code_column, cfg.name_column)
    return _DISTRICTS.get(key, lambda: _read_districts(cfg))


def _read_districts(cfg: DistrictsConfig) -> gpd.GeoDataFrame:
    gdf = _read(cfg.path, cfg.layer, "districts")
    if cfg.area_column:
        if cfg.area_column not in gdf.columns:
            raise VectorInputError(f"districts file {cfg.path} has no column {cfg.area_column!r}; set "
                                   "districts.area_column")
        gdf = gdf[gdf[cfg.area_column].astype(str).str.strip() == cfg.area_value]
        if gdf.empty:
            raise VectorInputError(f"districts file {cfg.path}: no rows with {cfg.area_column} = {cfg.area_value!r}")
    if cfg.code_column not in gdf.columns:
        columns = ", ".join(c for c in gdf.columns if c != "geometry")
        raise VectorInputError(f"districts file {cfg.path} has no column {cfg.code_column!r} "
                               f"(columns: {columns}); set districts.code_column")
    codes = gdf[cfg.code_column].astype("string").str.strip()
    if codes.isna().any() or (codes == "").any():
        rows = gdf.index[codes.isna() | (codes == "")].tolist()
        raise VectorInputError(f"districts file {cfg.path}: empty {cfg.code_column!r} in rows {rows}")
    if codes.duplicated().any():
        dups = sorted(codes[codes.duplicated()].unique())
        raise VectorInputError(f"districts file {cfg.path}: duplicate {cfg.code_column!r} values {dups}")
    if cfg.name_column and cfg.name_column in gdf.columns:
        names = gdf[cfg.name_column].astype("string")
    else:
        names = codes
    out = gpd.GeoDataFrame({"district_code": codes.astype(str), "district_name": names.astype(str)},
                           geometry=gdf.geometry.values, crs=gdf.crs)
    out = _repair(out, "district_code", "districts", cfg.path)
    log.info("districts: %d read from %s (CRS %s)", len(out), cfg.path, out.crs.to_string())
    return out


def read_boundary(path: str, crs: str) -> BaseGeometry:
    """The union of a boundary file's polygons, reprojected to ``crs``."""
    gdf = _read(path, None, "boundary").to_crs(crs)
    gdf = _repair(gdf, None, "boundary", path)
    return gdf.union_all()
