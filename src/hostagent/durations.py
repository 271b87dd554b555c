"""Durations as Prometheus writes them ("90s", "5m", "1h30m", "30d"), for
every command that takes one on its command line.

    >>> seconds("1h30m")
    5400.0
    >>> seconds("1.5h", fractions=True)
    5400.0
"""

from __future__ import annotations

import re

UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "y": 31536000.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|[smhdwy])")


def seconds(text: str, fractions: bool = False) -> float:
    """The seconds in ``text``: numbers each followed by a unit (ms, s, m, h,
    d, w, y), as in Prometheus; with ``fractions``, numbers may have decimals
    (``1.5h``). Raises ValueError for anything else, the empty string included."""
    text = text.strip()
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos or ("." in match.group(1) and not fractions):
            break
        total += float(match.group(1)) * UNITS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ValueError(f"not a duration: {text!r}")
    return total
