"""Map classification breaks (mapclassify), reproducible, with a colour per class."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import mapclassify
import numpy as np
from matplotlib import colormaps
from matplotlib.colors import to_hex

from ingestion.atomic import write_text

#: NaturalBreaks runs k-means from random starts; the notebook's breaks changed from run to run.
NATURAL_BREAKS_SEED = 12345


def classify(values: np.ndarray, scheme: str = "FisherJenks", k: int = 5, colormap: str = "RdYlGn") -> dict:
    """Breaks of ``values`` (NaN ignored) as {scheme, k, bins, min, max, colors}; ``bins`` are upper bounds.

    ``k`` is reduced to the number of distinct values when there are fewer.
    """
    data = np.asarray(values, dtype=float)
    data = data[np.isfinite(data)]
    if data.size == 0:
        raise ValueError("no values to classify (every district is without valid pixels)")
    k = int(min(k, np.unique(data).size))
    if k < 2:
        bins = [float(data.max())]
    elif scheme == "NaturalBreaks":
        state = np.random.get_state()
        np.random.seed(NATURAL_BREAKS_SEED)
        try:
            bins = mapclassify.NaturalBreaks(data, k=k).bins.tolist()
        finally:
            np.random.set_state(state)
    else:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Numba not installed")
            bins = getattr(mapclassify, scheme)(data, k=k).bins.tolist()
    cmap = colormaps[colormap]
    colors = [to_hex(cmap(i / max(len(bins) - 1, 1))) for i in range(len(bins))]
    return {"scheme": scheme, "k": len(bins), "bins": [float(b) for b in bins], "min": float(data.min()),
            "max": float(data.max()), "colors": colors}


def write_breaks(breaks: dict, path: Path, **extra: object) -> Path:
    """Write ``breaks`` (plus ``extra`` keys such as the column name) as JSON, atomically."""
    return write_text(path, json.dumps({**breaks, **extra}, indent=2))
