"""Years of Sentinel-2 imagery: the one check every step applies to a year before it reaches SQL or a path."""

from __future__ import annotations

import datetime as dt
from typing import Any

FIRST_SENTINEL2_YEAR = 2015


class InvalidYearError(ValueError):
    """A value is not a Sentinel-2 year; the message names where it came from and the valid range."""


def last_year() -> int:
    """The latest year accepted: next year (a config may list the coming year before its imagery exists)."""
    return dt.date.today().year + 1


def validate_year(value: Any, where: str = "year") -> int:
    """An integer year between 2015 (Sentinel-2) and next year, from an ``int`` or a string of digits;
    anything else (a bool, a float, SQL) raises :class:`InvalidYearError` naming ``where``."""
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.isdigit())):
        raise InvalidYearError(f"{where}: {value!r} is not a year (expected e.g. 2024)")
    year = int(value)
    if not FIRST_SENTINEL2_YEAR <= year <= last_year():
        raise InvalidYearError(f"{where}: {year} is outside {FIRST_SENTINEL2_YEAR}..{last_year()} (Sentinel-2 years)")
    return year
