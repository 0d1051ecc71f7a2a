"""Publishing a file: written under a unique temporary name in its folder, then renamed over the target.

Readers never see a half-written file, two writers of one file never share a temporary file (last rename
wins, never a mix), and a failed write leaves the previous file as it was and no temporary file behind.
A write that fails for lack of space or another I/O error raises :class:`OutputWriteError`, which names the
file and the free space of its folder.
"""

from __future__ import annotations

import filecmp
import os
import secrets
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class OutputWriteError(OSError):
    """Writing an output file failed (disk full, I/O error); the message names the file and the free space."""


def free_space(folder: Path) -> str:
    """The free space of the file system holding ``folder``, for people (``12.3 MB``), or ``unknown``."""
    try:
        free = float(shutil.disk_usage(folder).free)
    except OSError:
        return "unknown"
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if free < 1000 or unit == "TB":
            return f"{free:.0f} {unit}" if unit == "bytes" else f"{free:.1f} {unit}"
        free /= 1000
    return "unknown"


def write_error(path: Path, exc: BaseException) -> OutputWriteError:
    """An :class:`OutputWriteError` for a failed write of ``path``: the cause, the file and the free space."""
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    if "no space left" not in reason.lower() and _is_full(path.parent):  # GDAL says only "Write failed"
        reason = f"No space left on device ({reason})"
    return OutputWriteError(f"writing {path} failed: {reason} ({free_space(path.parent)} free in {path.parent})")


def _is_full(folder: Path) -> bool:
    """Whether the file system holding ``folder`` has less than 1 MB free."""
    try:
        return shutil.disk_usage(folder).free < 1_000_000
    except OSError:
        return False


def temp_name(path: Path) -> Path:
    """A unique temporary name for ``path`` in its own folder, keeping its suffix (drivers choose by it)."""
    return path.with_name(f".{path.stem}.tmp-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}{path.suffix}")


@contextmanager
def published(path: Path, keep_if_equal: bool = False) -> Iterator[Path]:
    """``with published(path) as tmp: write(tmp)``: ``tmp`` replaces ``path`` if the block succeeds.

    ``keep_if_equal``: when ``tmp`` has the same bytes as the existing ``path``, ``path`` is left untouched (its
    modification time and inode too, so that re-runs change nothing) and ``tmp`` is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    try:
        yield tmp
        if not (keep_if_equal and path.exists() and filecmp.cmp(tmp, path, shallow=False)):
            os.replace(tmp, path)
    except OSError as exc:
        raise write_error(path, exc) from exc
    except Exception as exc:
        # GDAL/OGR write errors are not OSErrors, and some do not say why (pyogrio: "Cannot write feature")
        if "No space left" in str(exc) or "Write failed" in str(exc) or _is_full(path.parent):
            raise write_error(path, exc) from exc
        raise
    finally:
        for leftover in path.parent.glob(f"{tmp.name}*"):  # with a driver's side files (-journal, -wal)
            leftover.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> Path:
    """Publish ``text`` (UTF-8) as ``path``."""
    with published(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
