"""Logging set-up: text or JSON lines on stderr, with debug repeats capped.

A debug line that comes back again and again (per collector run, per
refused request, per failed TLS handshake under a flood) is written at most
``REPEATS`` times per ``WINDOW`` seconds for one logger, message and first
argument; the next line of that kind after the window says how many were
left out. So debug is useful on a busy or attacked agent without flooding.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from typing import Callable, Dict, Hashable, Tuple

REPEATS = 10
WINDOW = 60.0


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class RepeatLimit(logging.Filter):
    """Lets through at most ``repeats`` records of one kind (logger, message
    template, first argument) per ``window`` seconds; the first one let
    through after a gap says how many of its kind were left out."""

    def __init__(self, repeats: int = REPEATS, window: float = WINDOW, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.repeats = repeats
        self.window = window
        self.clock = clock
        self._lock = threading.Lock()
        # kind -> [window start, let through in it, left out since the last one let through]
        self._seen: Dict[Tuple[Hashable, ...], list] = {}

    @staticmethod
    def _kind(record: logging.LogRecord) -> Tuple[Hashable, ...]:
        args = record.args if isinstance(record.args, tuple) else ()
        first = args[0] if args and isinstance(args[0], Hashable) else None
        return record.name, str(record.msg), first

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.DEBUG:
            return True  # info and above are rare by design: each says something new
        now = self.clock()
        kind = self._kind(record)
        with self._lock:
            seen = self._seen.get(kind)
            if seen is None or now - seen[0] >= self.window:
                if len(self._seen) > 10_000:  # bounded whatever the kinds
                    self._seen.clear()
                left_out = seen[2] if seen is not None else 0
                self._seen[kind] = [now, 1, 0]
            elif seen[1] < self.repeats:
                seen[1] += 1
                left_out, seen[2] = seen[2], 0
            else:
                seen[2] += 1
                return False
        if left_out:
            record.msg = f"{record.msg} [{left_out} more like this left out]"
        return True


def setup(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RepeatLimit())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
