"""Console-script entry points of the commands that run the pipeline (``ndvi-pipeline``, ``ndvi-demo``), with
CPython's cyclic garbage collector kept off the objects that live as long as the process.

Importing the pipeline (Dagster, dbt, pandas, GDAL's and GEOS's bindings) makes about 500,000 objects that
live until the process ends, and almost no garbage. CPython's collector walks every tracked object at each full
collection: measured on ``ndvi-pipeline run`` (2 cores), nine full collections while importing took 1.4 s, and
the collection at interpreter exit took 2 s after a 96-area run or a 14,000-district one. So:

- the imports run with the collector paused, and what they made is then frozen (``gc.freeze``: moved to a
  permanent generation that collections skip; reference counting still frees each object as usual);
- when the command is done, everything is frozen once more, so the interpreter exits without walking it.

Objects made during the run are collected as usual. Only cyclic garbage that is frozen is never collected:
there is none after the imports, and at exit the process's memory goes back to the OS anyway.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused_then_frozen() -> Iterator[None]:
    """Run the block (imports) with the cyclic collector off, then freeze every object alive and turn it back
    on (unless it was off before)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def _run(main: Callable[[], int]) -> int:
    try:
        return main()
    finally:
        gc.freeze()  # exit without a last walk over everything the command made


def pipeline() -> int:
    """``ndvi-pipeline`` (:func:`dagster_project.cli.main`)."""
    with collector_paused_then_frozen():
        from dagster_project.cli import main
    return _run(main)


def demo() -> int:
    """``ndvi-demo`` (:func:`dagster_project.demo.main`)."""
    with collector_paused_then_frozen():
        from dagster_project.demo import main
    return _run(main)
