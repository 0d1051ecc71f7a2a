"""Paths and URLs in a config file: ``${VARS}`` expanded, relative paths resolved against the file's folder."""

from __future__ import annotations

import os
import string
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, ValidationInfo

from ingestion.paths import data_dir, project_home


def expand(value: str, base: Path | None) -> str:
    """``value`` with ``${NDVI_DATA_DIR}``, ``${NDVI_HOME}`` and any environment variable substituted; a
    relative local path made absolute against ``base``; URLs and ``/vsi...`` paths kept as they are."""
    mapping = {"NDVI_DATA_DIR": str(data_dir()), "NDVI_HOME": str(project_home()), **os.environ}
    expanded = string.Template(value).safe_substitute(mapping)
    if "://" in expanded or expanded.startswith("/vsi"):
        return expanded
    path = Path(expanded).expanduser()
    return str(path if path.is_absolute() or base is None else (base / path).resolve())


def base_folder(info: ValidationInfo) -> Path | None:
    """The config file's folder, passed to validation as ``context={"base": ...}``."""
    return (info.context or {}).get("base")


def _expand_path(value: Any, info: ValidationInfo) -> Any:
    return expand(str(value), base_folder(info)) if value is not None else None


#: A path or URL: ``${VARS}`` expanded and relative paths resolved against the config file's folder.
ConfigPath = Annotated[str, BeforeValidator(_expand_path)]
