"""The error a bad configuration raises, and the "did you mean" hint for an unknown key."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the file, the key path and the value."""


def unknown_key_message(path: str, key: str, valid: Iterable[str], what: str = "key") -> str:
    """``"<path>: unknown <what>; did you mean '<nearest>'?"`` (or the valid keys when none is close)."""
    valid = list(valid)
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else f"valid: {', '.join(sorted(valid))}"
    return f"{path}: unknown {what}; {hint}"
