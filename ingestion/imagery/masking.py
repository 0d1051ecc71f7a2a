"""Pixel masking from the Sentinel-2 Scene Classification Layer (SCL)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

#: SCL class id -> name (ESA L2A product specification).
SCL_CLASSES = {
    0: "no_data", 1: "saturated_or_defective", 2: "dark_area_pixels", 3: "cloud_shadows", 4: "vegetation",
    5: "not_vegetated", 6: "water", 7: "unclassified", 8: "cloud_medium_probability",
    9: "cloud_high_probability", 10: "thin_cirrus", 11: "snow",
}
#: Classes dropped by default: no-data, saturated, cloud shadow, medium/high cloud, cirrus, snow.
DEFAULT_MASKED_CLASSES = frozenset({0, 1, 3, 8, 9, 10, 11})


def validate_classes(classes: Iterable[int | str]) -> frozenset[int]:
    """SCL classes given as ids or names, checked; raises ValueError naming an unknown class."""
    by_name = {name: cid for cid, name in SCL_CLASSES.items()}
    out = set()
    for c in classes:
        if isinstance(c, str) and c in by_name:
            out.add(by_name[c])
        elif isinstance(c, int) and not isinstance(c, bool) and c in SCL_CLASSES:
            out.add(c)
        else:
            raise ValueError(f"unknown SCL class {c!r}; valid ids 0..11 or names {sorted(by_name)}")
    return frozenset(out)


def clear_mask(scl: np.ndarray, masked_classes: Iterable[int] = DEFAULT_MASKED_CLASSES) -> np.ndarray:
    """True where the pixel's SCL class is not masked."""
    return ~np.isin(scl, np.fromiter(masked_classes, dtype=np.int64))
