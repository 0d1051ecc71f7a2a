"""Open rasterio datasets kept across the reads of a batch, and one user at a time per file.

A batch of area-years reads the same scenes again and again: the offset check and every block of every area
that a scene covers. Opening a COG parses its header (and over HTTPS costs a round trip or more); a province of
small areas opened each asset about twice per area-year, which cost more than its pixel reads. Inside
:func:`keeping_open` (a batch) a file is opened once and kept, per href and GDAL options (up to
:data:`MAX_OPEN` files, least recently used closed first); they are closed when the batch ends. Outside it,
each use opens and closes the file.

Every use of a file holds its lock (:func:`file_lock`), so a dataset is never used by two threads at once (GDAL
datasets are not thread-safe) and two blocks needing the same source tile do not both fetch it: the second
finds it in GDAL's cache. A local file is reopened when its size, modification time or inode changed; a remote
one (URL, ``/vsi…``) is taken as unchanged for the batch.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import rasterio

#: Files kept open per process (each holds a file descriptor or an HTTP handle and its header).
MAX_OPEN = 256

_locks: dict[str, threading.RLock] = {}
_locks_guard = threading.Lock()
_open: OrderedDict[tuple, tuple[tuple | None, rasterio.DatasetReader]] = OrderedDict()
_open_guard = threading.Lock()
_batches = 0  # keeping_open blocks under way in this process


@contextmanager
def keeping_open() -> Iterator[None]:
    """Keep the files opened meanwhile open for reuse; close them all when the last such block ends."""
    global _batches
    with _open_guard:
        _batches += 1
    try:
        yield
    finally:
        with _open_guard:
            _batches -= 1
            last = _batches == 0
        if last:
            close_all()


def file_lock(href: str) -> threading.RLock:
    """The lock every use of ``href`` in this process holds (re-entrant)."""
    with _locks_guard:
        return _locks.setdefault(href, threading.RLock())


def _signature(href: str) -> tuple | None:
    if "://" in href or href.startswith("/vsi"):
        return None
    try:
        stat = os.stat(href)
    except OSError:  # gone or unreadable: never matches, so rasterio.open says what is wrong
        return ("missing", href)
    return stat.st_size, stat.st_mtime_ns, stat.st_ino


@contextmanager
def opened(href: str, options: Mapping[str, object] | None = None) -> Iterator[rasterio.DatasetReader]:
    """``href`` open for reading, held under its :func:`file_lock` while the block runs. Call inside the
    ``rasterio.Env`` of ``options`` (the read's GDAL options: a kept file is reused only with the same ones).
    Open errors propagate as rasterio raises them."""
    with file_lock(href):
        with _open_guard:
            keep = _batches > 0
        if not keep:
            with rasterio.open(href) as src:
                yield src
            return
        key = (href, tuple(sorted((k, str(v)) for k, v in (options or {}).items())))
        signature = _signature(href)
        with _open_guard:
            kept = _open.get(key)
            if kept is not None:
                _open.move_to_end(key)
        if kept is not None and kept[0] != signature:  # a local file rewritten since
            with _open_guard:
                _open.pop(key, None)
            kept[1].close()
            kept = None
        if kept is None:
            kept = (signature, rasterio.open(href))
            with _open_guard:
                _open[key] = kept
            _close_least_recent()
        yield kept[1]


def _close_least_recent() -> None:
    """Close kept files beyond :data:`MAX_OPEN`, oldest use first, skipping any in use now."""
    with _open_guard:
        excess = list(_open)[:max(0, len(_open) - MAX_OPEN)]
    for key in excess:
        lock = file_lock(key[0])
        if not lock.acquire(blocking=False):
            continue
        try:
            with _open_guard:
                kept = _open.pop(key, None)
            if kept is not None:
                kept[1].close()
        finally:
            lock.release()


def close_all() -> None:
    """Close every kept file (waiting for the ones in use)."""
    with _open_guard:
        keys = list(_open)
    for key in keys:
        with file_lock(key[0]):
            with _open_guard:
                kept = _open.pop(key, None)
            if kept is not None:
                kept[1].close()
