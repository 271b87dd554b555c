"""Times and durations on the command line, as Prometheus users write them.

    >>> parse_duration("1h30m")
    5400.0
    >>> parse_time("now-30d", now=2592000.0)
    0.0
    >>> parse_time("1970-01-02")
    86400.0
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Optional

from .. import durations
from . import ToolError

TIME_FORMS = "RFC 3339 (2026-05-01T12:00:00Z), a date (2026-05-01, UTC), unix seconds, now, or now-30d"


def parse_duration(text: str, option: str = "duration") -> float:
    """Seconds in a Prometheus-style duration ("90s", "2h", "1h30m", "30d"); plain numbers are seconds."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        try:
            value = durations.seconds(text, fractions=True)
        except ValueError:
            raise ToolError(f"{option}: cannot read {text!r} as a duration (like 30s, 5m, 1h30m, 30d)", 2) from None
    if not value > 0:
        raise ToolError(f"{option}: must be more than zero, got {text!r}", 2)
    return value


def parse_time(text: str, option: str = "time", now: Optional[float] = None) -> float:
    """Unix seconds from one of TIME_FORMS."""
    raw = text
    text = text.strip()
    current = time.time() if now is None else now
    if text == "now":
        return current
    if text.startswith("now-") or text.startswith("-"):
        return current - parse_duration(text.split("-", 1)[1], option)
    try:
        return float(text)
    except ValueError:
        pass
    iso = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    try:
        when = dt.datetime.fromisoformat(iso)
    except ValueError:
        raise ToolError(f"{option}: cannot read {raw!r} as a time; use {TIME_FORMS}", 2) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.timestamp()


def iso(ts: float) -> str:
    """Unix seconds as RFC 3339 in UTC, to the millisecond when not whole."""
    when = dt.datetime.fromtimestamp(ts, dt.timezone.utc)
    if ts == int(ts):
        return when.strftime("%Y-%m-%dT%H:%M:%SZ")
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def local_time(moment: "dt.datetime | float", fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A moment in this machine's time zone, with its offset from UTC said:
    '2024-05-01 10:02 UTC', '2024-05-01 12:02 UTC+02:00'."""
    when = moment if isinstance(moment, dt.datetime) else dt.datetime.fromtimestamp(moment, dt.timezone.utc)
    local = when.astimezone()
    offset = local.strftime("%z")
    zone = "UTC" if offset in ("+0000", "-0000", "") else f"UTC{offset[:3]}:{offset[3:5]}"
    return f"{local.strftime(fmt)} {zone}"


def human_duration(seconds: float) -> str:
    """A short duration for people: 45s, 12m, 3h20m, 4d6h."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m" + (f"{seconds % 60:02.0f}s" if seconds < 600 and seconds % 60 >= 1 else "")
    if seconds < 86400:
        return f"{seconds // 3600:.0f}h{(seconds % 3600) // 60:02.0f}m"
    return f"{seconds // 86400:.0f}d{(seconds % 86400) // 3600:.0f}h"


def range_of(start_text: str, end_text: str, default_span: float) -> "tuple[float, float]":
    """(start, end) from --from/--to texts ('' for the default); end must come after start."""
    now = time.time()
    end = parse_time(end_text, "--to", now) if end_text else now
    start = parse_time(start_text, "--from", now) if start_text else end - default_span
    if start >= end:
        raise ToolError(f"--from ({iso(start)}) must be before --to ({iso(end)})", 2)
    return start, end
