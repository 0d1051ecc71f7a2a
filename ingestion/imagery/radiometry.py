"""Digital numbers to surface reflectance to NDVI.

Sentinel-2 L2A from processing baseline 04.00 (25 Jan 2022) carries BOA_ADD_OFFSET = -1000 DN. Earth Search
v1 removes it from most such COGs and says so with ``earthsearch:boa_offset_applied: true`` while
``raster:bands[].offset`` may still read -0.1. The metadata rule below is only the prior: the flag is wrong on
real items, and ``ingestion.imagery.offset_check`` lets the item's own pixels decide where they are conclusive.
Per item and band:

1. ``earthsearch:boa_offset_applied`` is a boolean: offset 0 when true; when false, -0.1 for baselines >= 04.00
   and 0 before;
2. else ``raster:bands[0].offset`` when the asset has one (e.g. collection ``sentinel-2-c1-l2a``);
3. else by baseline alone: -0.1 from 04.00, 0 before.

Scale comes from ``raster:bands[0].scale`` (default 0.0001). Reflectance = DN × scale + offset (unitless).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pystac

DEFAULT_SCALE = 0.0001
BOA_OFFSET = -0.1
OFFSET_BASELINE = (4, 0)


class ItemMetadataError(ValueError):
    """An item's radiometric metadata cannot be interpreted; the message names the item and field."""


@dataclass(frozen=True)
class Radiometry:
    """Reflectance = DN × ``scale`` + ``offset``; ``rule`` says which metadata decided the offset."""

    scale: float
    offset: float
    rule: str


def _baseline(item: pystac.Item) -> tuple[int, int] | None:
    raw = item.properties.get("s2:processing_baseline")
    if raw is None:
        return None
    try:
        major, minor = str(raw).split(".")
        return int(major), int(minor)
    except ValueError:
        raise ItemMetadataError(f"item {item.id}: s2:processing_baseline {raw!r} is not like '05.09'") from None


def radiometry(item: pystac.Item, asset_key: str) -> Radiometry:
    """Scale and offset for ``asset_key`` of ``item`` by the rules in this module's docstring."""
    if asset_key not in item.assets:
        raise ItemMetadataError(f"item {item.id}: no asset {asset_key!r}")
    bands = item.assets[asset_key].extra_fields.get("raster:bands") or [{}]
    if not isinstance(bands, list) or not isinstance(bands[0], dict):
        raise ItemMetadataError(f"item {item.id}: raster:bands of {asset_key!r} is not a list of objects")
    band = bands[0]
    scale = band.get("scale", DEFAULT_SCALE)
    if not isinstance(scale, int | float) or scale <= 0:
        raise ItemMetadataError(f"item {item.id}: raster:bands scale of {asset_key!r} is {scale!r}")
    baseline = _baseline(item)
    applied = item.properties.get("earthsearch:boa_offset_applied")
    if applied is not None and not isinstance(applied, bool):
        raise ItemMetadataError(f"item {item.id}: earthsearch:boa_offset_applied is {applied!r}, not a boolean")
    if isinstance(applied, bool):
        if applied:
            return Radiometry(float(scale), 0.0, "earthsearch:boa_offset_applied=true")
        if baseline is not None and baseline >= OFFSET_BASELINE:
            return Radiometry(float(scale), BOA_OFFSET, "boa_offset_applied=false, baseline>=04.00")
        return Radiometry(float(scale), 0.0, "boa_offset_applied=false, baseline<04.00")
    if "offset" in band:
        offset = band["offset"]
        if not isinstance(offset, int | float):
            raise ItemMetadataError(f"item {item.id}: raster:bands offset of {asset_key!r} is {offset!r}")
        return Radiometry(float(scale), float(offset), "raster:bands offset")
    if baseline is not None and baseline >= OFFSET_BASELINE:
        return Radiometry(float(scale), BOA_OFFSET, "baseline>=04.00")
    return Radiometry(float(scale), 0.0, "baseline<04.00 or unknown")


def reflectance(dn: np.ndarray, radio: Radiometry, nodata: int | None = 0) -> np.ndarray:
    """Float32 reflectance from DN; ``nodata`` DN (Sentinel-2: 0) becomes NaN."""
    refl = dn.astype(np.float32) * np.float32(radio.scale) + np.float32(radio.offset)
    if nodata is not None:
        refl = np.where(dn == nodata, np.float32(np.nan), refl)
    return refl


def ndvi(red: np.ndarray, nir: np.ndarray) -> np.ndarray:
    """(nir − red) / (nir + red) as float32; NaN where an input is NaN or the denominator is not positive.

    A non-positive denominator only happens for invalid reflectances; the result is clipped to [-1, 1] so
    no value outside NDVI's range (or ±inf) can escape.
    """
    red = np.asarray(red, dtype=np.float32)
    nir = np.asarray(nir, dtype=np.float32)
    denom = nir + red
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (nir - red) / denom
    out = np.where(np.isfinite(denom) & (denom > 0) & np.isfinite(out), out, np.float32(np.nan))
    return np.clip(out, -1.0, 1.0).astype(np.float32)
