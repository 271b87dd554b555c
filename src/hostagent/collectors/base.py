"""The collector contract: read in ``sample()``, format in ``families()``.

A collector is one file under ``hostagent/collectors/`` holding a
``BaseCollector`` subclass decorated with ``@register``. ``sample()`` makes
every system call and returns plain immutable data; ``families(sample)`` is a
pure function of that data, so tests feed it hand-made samples.
"""

from __future__ import annotations

import abc
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Dict, Iterable, Mapping, Optional, Tuple, Type

from ..promclient import CounterMetricFamily, GaugeMetricFamily, Metric

# --------------------------------------------------------------------------
# Metric declarations


@dataclass(frozen=True)
class MetricSpec:
    """One metric family a collector may emit: the single source of its HELP."""

    name: str
    type: str  # "gauge" or "counter"
    help: str
    labels: Tuple[str, ...] = ()
    unit: str = ""  # for the catalog: bytes, seconds, ratio, celsius, ...

    def __post_init__(self) -> None:
        if self.type not in ("gauge", "counter"):
            raise ValueError(f"{self.name}: type must be gauge or counter")
        if self.type == "counter" and not self.name.endswith("_total"):
            raise ValueError(f"{self.name}: a counter's name ends in _total")
        if self.type == "gauge" and self.name.endswith("_total"):
            raise ValueError(f"{self.name}: only a counter's name ends in _total")
        if not self.help:
            raise ValueError(f"{self.name}: HELP text is required")

    def family(self) -> Metric:
        """A new, empty metric family for this spec."""
        if self.type == "counter":
            return CounterMetricFamily(self.name, self.help, labels=self.labels)
        return GaugeMetricFamily(self.name, self.help, labels=self.labels)

    def single(self, value: float) -> Metric:
        """A family holding one unlabelled sample."""
        fam = self.family()
        fam.add_metric([], value)
        return fam


def fraction(part: float, whole: float) -> float:
    """``part / whole`` clamped to 0..1; 0 when ``whole`` is not positive."""
    if whole <= 0:
        return 0.0
    return min(max(part / whole, 0.0), 1.0)


# --------------------------------------------------------------------------
# Outcomes


class NotAvailable(Exception):
    """Raised by ``sample()`` when the collector's source does not exist on
    this host (no /proc/pressure, no conntrack module, no /proc/mdstat): not a
    failure. The message says why, e.g. "no /proc/pressure (kernel without
    PSI)". A source that exists but cannot be read raises as usual.

    The agent then serves no host series for the collector, keeps
    ``/-/ready`` from waiting on it, counts no error, logs the reason once
    and keeps checking at the collector's interval, so a source that appears
    later (a module loaded) is picked up at the next run."""


# --------------------------------------------------------------------------
# Options


def describe_error(exc: BaseException) -> str:
    """A collector's failure as people read it: a system error is its
    message and the path ("Permission denied: /proc/net/nf_conntrack"),
    any other error its message; the class name only where the message
    alone says nothing (a KeyError's bare key, an empty message)."""
    if isinstance(exc, OSError):
        if exc.strerror:
            paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
            return f"{exc.strerror}: {' -> '.join(paths)}" if paths else exc.strerror
        return str(exc) or type(exc).__name__
    message = str(exc)
    if not message or isinstance(exc, LookupError):
        return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return message


class OptionError(ValueError):
    """A collector option value is not acceptable; the message says why."""


def _check_bool(value: Any) -> Any:
    if not isinstance(value, bool):
        raise OptionError(f"must be true or false, got {value!r}")
    return value


def _shown_number(value: Any) -> str:
    """repr(value), but a 400-digit number is named by its length, not printed."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**20:
        digits = int(value.bit_length() * math.log10(2)) + 1
        return f"a number of {digits - (abs(value) < 10 ** (digits - 1))} digits"
    return repr(value)


def _check_int(lo: Optional[int], hi: Optional[int]) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            raise OptionError(f"must be a whole number, got {value!r}")
        if lo is not None and value < lo or hi is not None and value > hi:
            bounds = f"between {lo} and {hi}" if lo is not None and hi is not None else f"at least {lo}" if lo is not None else f"at most {hi}"
            raise OptionError(f"must be {bounds}, got {_shown_number(value)}")
        return value

    return check


MAX_SECONDS = 86400.0  # one day: longer waits are mistakes, and threads cannot wait forever


def _check_positive_number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise OptionError(f"must be a number, got {value!r}")
    if isinstance(value, int) and value.bit_length() > 64:
        # Past what a float holds exactly (or at all): no setting means that.
        raise OptionError(f"must be a number of sensible size, got {_shown_number(value)}")
    if not math.isfinite(value):
        raise OptionError(f"must be a finite number, got {value!r}")
    if not value > 0:
        raise OptionError(f"must be greater than 0, got {value!r}")
    return float(value)


def _check_seconds(lo: float) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        value = _check_positive_number(value)
        if value > MAX_SECONDS:
            raise OptionError(f"must be at most {MAX_SECONDS:g} seconds (one day), got {value!r}")
        if value < lo:
            raise OptionError(f"must be at least {lo:g} seconds, got {value!r}")
        return value

    return check


def _check_regex(value: Any) -> Any:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise OptionError(f"must be a regular expression string, got {value!r}")
    try:
        re.compile(value)
    except re.error as exc:
        raise OptionError(f"is not a valid regular expression ({exc}): {value!r}") from None
    return value


def _check_str(value: Any) -> Any:
    if not isinstance(value, str) or not value:
        raise OptionError(f"must be a non-empty string, got {value!r}")
    return value


@dataclass(frozen=True)
class Option:
    """A collector option: its default, a one-line description and its check."""

    default: Any
    doc: str
    check: Callable[[Any], Any] = field(default=lambda v: v)
    choices: Tuple[str, ...] = ()  # the accepted values, for a choice (--help lists them)

    @classmethod
    def boolean(cls, default: bool, doc: str) -> "Option":
        return cls(default, doc, _check_bool)

    @classmethod
    def integer(cls, default: int, doc: str, lo: Optional[int] = None, hi: Optional[int] = None) -> "Option":
        return cls(default, doc, _check_int(lo, hi))

    @classmethod
    def seconds(cls, default: float, doc: str, lo: float = 0.0) -> "Option":
        """Seconds, greater than 0 (and at least ``lo``), at most one day."""
        return cls(default, doc, _check_seconds(lo))

    @classmethod
    def regex(cls, default: Optional[str], doc: str) -> "Option":
        """A regular expression (searched), or null/empty for 'none'."""
        return cls(default, doc, _check_regex)

    @classmethod
    def string(cls, default: str, doc: str) -> "Option":
        """A non-empty string."""
        return cls(default, doc, _check_str)

    @classmethod
    def choice(cls, default: str, doc: str, choices: Tuple[str, ...]) -> "Option":
        def check(value: Any) -> Any:
            if value not in choices:
                raise OptionError(f"must be one of {', '.join(choices)}, got {value!r}")
            return value

        return cls(default, doc, check, choices)

    @classmethod
    def number(cls, default: float, doc: str) -> "Option":
        """A number greater than zero."""
        return cls(default, doc, _check_positive_number)


class NameFilter:
    """Shared include/exclude filter: a name passes if it matches include
    (when set) and does not match exclude (when set).

    Patterns are searched, not implicitly anchored, as in node_exporter, so its
    ``^...$`` defaults carry over unchanged."""

    def __init__(self, include: Optional[str] = None, exclude: Optional[str] = None):
        self._include = re.compile(include) if include else None
        self._exclude = re.compile(exclude) if exclude else None

    @staticmethod
    def options(prefix: str, things: str, exclude_default: Optional[str], exclude_why: str = "") -> Dict[str, "Option"]:
        """The ``<prefix>_include`` / ``<prefix>_exclude`` option pair."""
        why = f"; {exclude_why}" if exclude_why else ""
        return {
            f"{prefix}_include": Option.regex(None, f"Only {things} matching this regex (searched) are reported."),
            f"{prefix}_exclude": Option.regex(exclude_default, f"{things[0].upper()}{things[1:]} matching this regex (searched) are skipped{why}."),
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any], prefix: str) -> "NameFilter":
        return cls(config[f"{prefix}_include"], config[f"{prefix}_exclude"])

    def __call__(self, name: str) -> bool:
        if self._include is not None and not self._include.search(name):
            return False
        if self._exclude is not None and self._exclude.search(name):
            return False
        return True


# --------------------------------------------------------------------------
# Paths


def read_text(path: str) -> str:
    """The whole text of a /proc or /sys file.

    With os.read rather than open(): half the cost for the small files read
    on every run (no buffered text wrapper), which counts at 5 s intervals."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8", "replace")


@dataclass(frozen=True)
class Paths:
    """Where the host's filesystems are seen from the agent (container use)."""

    procfs: str = "/proc"
    sysfs: str = "/sys"
    rootfs: str = "/"

    def proc(self, *parts: str) -> str:
        """A path under the host's /proc, e.g. ``proc("net", "dev")``."""
        return os.path.join(self.procfs, *parts)

    def sys(self, *parts: str) -> str:
        """A path under the host's /sys, e.g. ``sys("class", "hwmon")``."""
        return os.path.join(self.sysfs, *parts)


# --------------------------------------------------------------------------
# Collectors


class BaseCollector(abc.ABC):
    """Base of every collector. Subclasses set the class attributes and
    implement ``sample`` and ``families``."""

    name: ClassVar[str]
    help: ClassVar[str] = ""  # one line for docs and --help
    default_enabled: ClassVar[bool] = True
    default_interval: ClassVar[float] = 15.0
    options: ClassVar[Mapping[str, Option]] = {}
    metrics: ClassVar[Tuple[MetricSpec, ...]] = ()

    def __init__(self, options: Optional[Mapping[str, Any]] = None, paths: Optional[Paths] = None):
        merged = {key: opt.default for key, opt in self.options.items()}
        merged.update(options or {})
        self.config: Mapping[str, Any] = merged
        self.paths = paths or Paths()

    @classmethod
    def nothing_to_do(cls, options: Mapping[str, Any]) -> Optional[str]:
        """Why these options leave the collector nothing to do (the textfile
        collector without a directory), or None. Such a collector is left
        off, shown as disabled with this reason, as if switched off."""
        return None

    @abc.abstractmethod
    def sample(self) -> Any:
        """Read the system and return an immutable sample."""

    @abc.abstractmethod
    def families(self, sample: Any) -> Iterable[Metric]:
        """Turn a sample into metric families; no system calls here."""

    def collect(self) -> Tuple[Metric, ...]:
        """One run: sample, then format."""
        return tuple(self.families(self.sample()))

    def close(self) -> None:
        """Release resources (thread pools, files) when the agent stops."""


REGISTRY: Dict[str, Type[BaseCollector]] = {}


def register(cls: Type[BaseCollector]) -> Type[BaseCollector]:
    """Class decorator adding a collector to the registry under ``cls.name``."""
    name = getattr(cls, "name", None)
    if not name or not re.fullmatch(r"[a-z][a-z0-9]*", name):
        raise ValueError(f"collector name must be lowercase letters/digits, got {name!r}")
    if name in REGISTRY and REGISTRY[name] is not cls:
        raise ValueError(f"collector {name!r} registered twice")
    for spec in cls.metrics:
        if not spec.name.startswith("host_"):
            raise ValueError(f"{cls.__name__}: host metric {spec.name} lacks the host_ prefix")
    REGISTRY[name] = cls
    return cls
