"""Map classification breaks: optimal, reproducible, and fast at national size (numba, never a silenced warning).

The breaks are compared with an independent Fisher-Jenks (an exact dynamic programme in float64 numpy that
minimises the within-class sum of squared deviations), on mean-NDVI-like values in separated clusters so
the optimum is unique.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

from ingestion.export.breaks import classify
from tests.conftest import PROJECT_ROOT


def optimal_upper_bounds(values: np.ndarray, k: int) -> list[float]:
    """Upper bounds of the k classes of sorted ``values`` with the least total within-class sum of squares."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = x.size
    s1 = np.concatenate([[0.0], np.cumsum(x)])
    s2 = np.concatenate([[0.0], np.cumsum(x * x)])
    best = np.full((k + 1, n + 1), np.inf)
    start = np.zeros((k + 1, n + 1), dtype=np.int64)
    best[0, 0] = 0.0
    for c in range(1, k + 1):
        for end in range(c, n + 1):
            first = np.arange(c - 1, end)  # the last class is x[first:end]
            size = end - first
            cost = best[c - 1, first] + (s2[end] - s2[first]) - (s1[end] - s1[first]) ** 2 / size
            i = int(np.argmin(cost))
            best[c, end], start[c, end] = cost[i], first[i]
    bounds, end = [], n
    for c in range(k, 0, -1):
        bounds.append(float(x[end - 1]))
        end = start[c, end]
    return bounds[::-1]


def _clustered(n: int, seed: int) -> np.ndarray:
    """Mean NDVI of ``n`` districts in five separated groups (water, built-up, mixed, green, forest)."""
    rng = np.random.default_rng(seed)
    centres = np.array([-0.1, 0.2, 0.4, 0.6, 0.8])
    return np.round(rng.choice(centres, n) + rng.uniform(-0.04, 0.04, n), 6)


def test_fisher_jenks_breaks_are_the_optimal_partition():
    values = _clustered(2_000, seed=3)
    values[::97] = np.nan  # districts without valid pixels are left out
    breaks = classify(values, "FisherJenks", k=5)
    assert breaks["bins"] == optimal_upper_bounds(values[np.isfinite(values)], 5)
    assert breaks["min"] == float(np.nanmin(values)) and breaks["k"] == len(breaks["colors"]) == 5


def test_national_size_breaks_use_numba_warn_nothing_and_repeat_exactly():
    """14,000 districts (the Dutch buurten): mapclassify must find numba (pure Python took 4.4 min here), and
    nothing may silence its warning: any warning fails this test."""
    from mapclassify import classifiers

    assert classifiers.HAS_NUMBA
    values = _clustered(14_000, seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        first = classify(values, "FisherJenks", k=5)
        second = classify(values.copy(), "FisherJenks", k=5)
    assert first == second
    # the five groups are 0.22 apart and 0.08 wide: every optimal upper bound is the maximum of a group
    groups = [values[(values > c - 0.05) & (values < c + 0.05)] for c in (-0.1, 0.2, 0.4, 0.6, 0.8)]
    assert first["bins"] == [float(g.max()) for g in groups]


def test_fisher_jenks_breaks_equal_mapclassify_s_own_ties_and_all():
    """The kernel compiled without the GIL gives mapclassify.FisherJenks' breaks exactly, on values with ties
    and without clear groups (where float32 rounding inside the kernel decides between near-equal partitions)."""
    import mapclassify

    rng = np.random.default_rng(11)
    for n, k, decimals in ((50, 3, 2), (999, 5, 3), (3_000, 7, 6)):
        values = np.round(rng.normal(0.45, 0.2, n), decimals)
        assert classify(values, "FisherJenks", k=k)["bins"] == mapclassify.FisherJenks(values, k=k).bins.tolist()


def test_fisher_jenks_runs_without_the_gil():
    """While one thread classifies 14,000 districts, another Python thread keeps running at a good share of its
    own pace: the indicators of a latest layer are classified side by side. With mapclassify's own kernel (which
    holds the GIL) the counting thread only runs in the switch intervals around the kernel's run (a few ms of
    its 0.3-1 s)."""
    import threading
    import time

    from ingestion.export.breaks import fisher_jenks_kernel

    kernel = fisher_jenks_kernel()
    values = np.sort(_clustered(14_000, seed=2))
    kernel(values[:100], 5)  # loaded, so that only the kernel's run is counted
    counted, running = [0], threading.Event()

    def count() -> None:
        running.set()
        while running.is_set():
            counted[0] += 1

    counter = threading.Thread(target=count)
    counter.start()
    running.wait()
    start, before = time.perf_counter(), counted[0]
    time.sleep(0.2)  # the counter's own pace, the GIL free
    pace = (counted[0] - before) / (time.perf_counter() - start)
    start, before = time.perf_counter(), counted[0]
    kernel(values, 5)
    during = (counted[0] - before) / (time.perf_counter() - start)
    running.clear()
    counter.join()
    assert during > 0.25 * pace, (during, pace)


def test_natural_breaks_are_reproducible_and_leave_the_global_random_state_alone():
    values = _clustered(500, seed=9)
    np.random.seed(1)
    expected_next = np.random.random()
    np.random.seed(1)
    first = classify(values, "NaturalBreaks", k=5)
    assert np.random.random() == expected_next
    assert classify(values, "NaturalBreaks", k=5) == first
    assert first["bins"] == pytest.approx(optimal_upper_bounds(values, 5))  # k-means finds the clear groups


def test_importing_mapclassify_after_the_pipeline_writes_nothing_into_the_environment():
    """A fresh interpreter: once the pipeline is imported (at process start, before any thread), importing
    mapclassify (in the background, while GDAL threads read the environment) changes no variable."""
    script = textwrap.dedent("""
        import os
        import dagster_project.cli
        before = dict(os.environ)
        import mapclassify
        changed = sorted(k for k in before.keys() | os.environ.keys() if before.get(k) != os.environ.get(k))
        assert not changed, changed
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]


def test_mapclassify_is_imported_by_classify_or_in_the_background_not_with_the_pipeline():
    """A fresh interpreter: importing the CLI (and so the pipeline) leaves mapclassify unimported; the
    background import is started once and classifying meanwhile gives the breaks."""
    script = textwrap.dedent("""
        import sys
        import numpy as np
        import dagster_project.cli
        from ingestion.export.breaks import classify, import_in_background
        assert "mapclassify" not in sys.modules
        thread = import_in_background()
        assert import_in_background() is thread and thread.daemon
        print(classify(np.array([0.1, 0.2, 0.8, 0.9]), k=2)["bins"])
        thread.join()
        assert "mapclassify" in sys.modules
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "[0.2, 0.9]"
