"""Map classification breaks (mapclassify), reproducible, with a colour per class.

mapclassify is imported when breaks are computed, not with this module: with numba installed (a pinned
dependency: FisherJenks is an O(k n^2) dynamic programme, ~1.5 s at 14,000 districts compiled and 4.4 min
in pure Python) its import compiles its kernels, several seconds that every process importing the pipeline
(the Dagster code location, every run) would otherwise pay. If numba is missing, mapclassify's warning
saying so is left to reach the logs. A run that will classify can start that import early, in the background
(:func:`import_in_background`): the yearly dbt step does, while its process waits for PostgreSQL.
"""

from __future__ import annotations

import importlib
import json
import os
import threading
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import to_hex

from ingestion.atomic import write_text

#: NaturalBreaks runs k-means from random starts; the notebook's breaks changed from run to run.
NATURAL_BREAKS_SEED = 12345


#: What importing mapclassify writes into the environment: scikit-learn, which it imports, sets these OpenMP
#: settings with ``os.environ.setdefault`` (``sklearn/__init__.py``). They are set here, when the pipeline is
#: imported at process start, so that mapclassify's import later (in the background, or in an export thread)
#: writes nothing while other threads run: ``setenv`` is not thread-safe against the ``getenv`` of GDAL's
#: threads (``tests/test_dbt_core.py`` watches the environment while dbt runs beside GDAL reads).
IMPORT_ENVIRONMENT = {"KMP_DUPLICATE_LIB_OK": "True", "KMP_INIT_AT_FORK": "FALSE"}
for _name, _value in IMPORT_ENVIRONMENT.items():
    os.environ.setdefault(_name, _value)

_IMPORT_LOCK = threading.Lock()
_importing: threading.Thread | None = None


def import_in_background() -> threading.Thread:
    """Import mapclassify in a daemon thread (once per process; returns that thread): numba's import and the
    compilation of FisherJenks take about 2.5 s of one core, which ``ndvi-pipeline run`` spends while PostgreSQL
    builds the yearly statistics (``dbt_yearly_models`` starts it) instead of at its last step. A
    :func:`classify` called meanwhile waits for the import to finish (Python's import lock)."""
    global _importing
    with _IMPORT_LOCK:
        if _importing is None:
            _importing = threading.Thread(target=importlib.import_module, args=("mapclassify",),
                                          name="import-mapclassify", daemon=True)
            _importing.start()
        return _importing


def classify(values: np.ndarray, scheme: str = "FisherJenks", k: int = 5, colormap: str = "RdYlGn") -> dict:
    """Breaks of ``values`` (NaN ignored) as {scheme, k, bins, min, max, colors}; ``bins`` are upper bounds,
    in the unit of ``values`` (here mean NDVI, unitless), ``colors`` hex strings from ``colormap``.

    ``k`` is reduced to the number of distinct values when there are fewer. The same values always give
    the same breaks (FisherJenks is exact; NaturalBreaks' k-means runs from a fixed seed).
    """
    data = np.asarray(values, dtype=float)
    data = data[np.isfinite(data)]
    if data.size == 0:
        raise ValueError("no values to classify (every district is without valid pixels)")
    k = int(min(k, np.unique(data).size))
    import mapclassify  # here, not at the top: see the module docstring

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
        # FisherJenks (the default) is exact and deterministic: the same values give the same breaks
        bins = getattr(mapclassify, scheme)(data, k=k).bins.tolist()
    cmap = colormaps[colormap]
    colors = [to_hex(cmap(i / max(len(bins) - 1, 1))) for i in range(len(bins))]
    return {"scheme": scheme, "k": len(bins), "bins": [float(b) for b in bins], "min": float(data.min()),
            "max": float(data.max()), "colors": colors}


def write_breaks(breaks: dict, path: Path, **extra: object) -> Path:
    """Write ``breaks`` (plus ``extra`` keys such as the column name) as JSON, atomically."""
    return write_text(path, json.dumps({**breaks, **extra}, indent=2))
