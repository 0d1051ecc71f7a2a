"""Run block tasks locally (threads) or on a Dask distributed cluster, yielding results as they complete.

At most ``in_flight`` blocks are submitted and not yet consumed, so the memory held by finished-but-unwritten
blocks is bounded on both sides (the writer and the workers), whatever the area's size.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Any, TypeVar

log = logging.getLogger(__name__)

SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"
T = TypeVar("T")
R = TypeVar("R")


def scheduler_address(configured: str | None = None) -> str | None:
    """The Dask scheduler to use: ``compute.dask_scheduler`` from the config, else ``$DASK_SCHEDULER_ADDRESS``,
    else ``None`` (run locally)."""
    return configured or os.environ.get(SCHEDULER_ENV) or None


def local_threads() -> int:
    """Worker threads for local runs: the cores this process may use."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def run_blocks(fn: Callable[[T], R], tasks: Iterable[T], address: str | None = None, threads: int | None = None,
               in_flight: int | None = None) -> Iterator[tuple[T, R]]:
    """``(task, fn(task))`` for every task, in completion order; exceptions of ``fn`` propagate unchanged.

    ``address``: a Dask scheduler (``tcp://host:8786``) or ``None`` for a local thread pool of ``threads``.
    """
    if address:
        yield from _run_distributed(fn, tasks, address, in_flight)
    else:
        yield from _run_local(fn, tasks, threads or local_threads(), in_flight)


def _run_local(fn: Callable[[T], R], tasks: Iterable[T], threads: int, in_flight: int | None
               ) -> Iterator[tuple[T, R]]:
    limit = in_flight or threads + 1
    pending: dict[Any, T] = {}
    todo = iter(tasks)
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="composite") as pool:
        try:
            while True:
                for task in todo:
                    pending[pool.submit(fn, task)] = task
                    if len(pending) >= limit:
                        break
                if not pending:
                    return
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield pending.pop(future), future.result()
        finally:
            for future in pending:
                future.cancel()


def _run_distributed(fn: Callable[[T], R], tasks: Iterable[T], address: str, in_flight: int | None
                     ) -> Iterator[tuple[T, R]]:
    """Submit a window of tasks and consume results first in, first out, topping the window up."""
    from collections import deque

    from distributed import Client

    with Client(address, set_as_default=False) as client:
        workers = client.nthreads()
        threads = sum(workers.values()) or 1
        limit = in_flight or 2 * threads
        log.info("running blocks on the Dask cluster at %s (%d workers, %d threads)", address, len(workers), threads)
        window: deque = deque()
        try:
            for task in tasks:
                window.append((task, client.submit(fn, task, pure=False)))
                if len(window) >= limit:
                    yield _take(window)
            while window:
                yield _take(window)
        finally:
            for _, future in window:
                future.cancel()


def _take(window) -> tuple:
    task, future = window.popleft()
    result = future.result()
    future.release()
    return task, result
