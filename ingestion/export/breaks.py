"""Map classification breaks (mapclassify), reproducible, with a colour per class.

mapclassify is imported when breaks are computed, not with this module: with numba installed (a pinned
dependency: FisherJenks is an O(k n^2) dynamic programme, ~1.5 s at 14,000 districts compiled and 4.4 min
in pure Python) its import compiles its kernels, several seconds that every process importing the pipeline
(the Dagster code location, every run) would otherwise pay. If numba is missing, mapclassify's warning
saying so is left to reach the logs. A run that will classify can start that import early, in the background
(:func:`import_in_background`): the yearly dbt step does, while its process waits for PostgreSQL.

Fisher-Jenks runs mapclassify's own compiled kernel, compiled once more without the GIL
(:func:`fisher_jenks_kernel`), so that the indicators of a latest layer are classified side by side.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
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
_KERNEL_LOCK = threading.Lock()
_kernel: Callable[[np.ndarray, int], np.ndarray] | None = None
#: NaturalBreaks seeds numpy's global random state: one at a time, or concurrent exports would interleave seeds.
_GLOBAL_RANDOM_STATE = threading.Lock()


def import_in_background() -> threading.Thread:
    """Import mapclassify and compile :func:`fisher_jenks_kernel` in a daemon thread (once per process; returns
    that thread): numba's import and the compilation of FisherJenks take about 2.5 s of one core, which
    ``ndvi-pipeline run`` spends while PostgreSQL builds the yearly statistics (``dbt_yearly_models`` starts it)
    instead of at its last step. A :func:`classify` called meanwhile waits for the import to finish (Python's
    import lock) and for the kernel (a lock)."""
    global _importing
    with _IMPORT_LOCK:
        if _importing is None:
            _importing = threading.Thread(target=fisher_jenks_kernel, name="import-mapclassify", daemon=True)
            _importing.start()
        return _importing


def fisher_jenks_kernel() -> Callable[[np.ndarray, int], np.ndarray] | None:
    """mapclassify's Fisher-Jenks kernel (``kernel(sorted float64 values, k)`` → the k upper bounds), compiled
    once more by numba with ``nogil=True``: the same Python function and the same types, so the same breaks as
    ``mapclassify.FisherJenks``, but threads run it side by side. mapclassify compiles it holding the GIL, and
    it is O(k n^2): four indicators of 14,000 districts took 2.4 s one after another, 1.0 s on 2 cores.

    Compiled once per process (0.5 s; numba's on-disk cache, beside mapclassify's module or in the user's
    cache, makes later processes load it in milliseconds). None without numba: then :func:`classify` calls
    ``mapclassify.FisherJenks``, whose warning about pure Python is left to reach the logs."""
    global _kernel
    with _KERNEL_LOCK:
        if _kernel is None:
            from mapclassify import classifiers  # here, not at the top: see the module docstring

            if not classifiers.HAS_NUMBA:
                return None
            import numba

            compiled = classifiers._fisher_jenks_means
            _kernel = numba.njit(compiled.nopython_signatures, nogil=True, cache=True)(compiled.py_func)
        return _kernel


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
    elif scheme == "FisherJenks" and (kernel := fisher_jenks_kernel()) is not None:
        bins = kernel(np.sort(data), k).tolist()  # what mapclassify.FisherJenks(data, k).bins holds
    elif scheme == "NaturalBreaks":
        with _GLOBAL_RANDOM_STATE:
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
