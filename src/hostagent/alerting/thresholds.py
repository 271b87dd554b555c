"""Alert thresholds: load and validate config/alerting.yaml.

One file holds, per alert, its levels (severity, threshold, ``for``), unit,
summary and description. The rule generator and the dashboards both read it
through ``load()``::

    >>> load()["cpu_usage"].levels[0]
    Level(severity='warning', threshold=0.8, for_='5m')
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ..collectors.base import OptionError
from ..collectors.procgroups import check_group_names
from ..config import ConfigFileError, load_yaml_file
from ..project import ROOT

DEFAULT_PATH: Path = ROOT / "config" / "alerting.yaml"

SEVERITIES: Tuple[str, ...] = ("info", "warning", "critical")  # least to most urgent
UNITS: Tuple[str, ...] = ("percentunit", "bytes", "s", "short", "cps")
DIRECTIONS: Tuple[str, ...] = ("above", "below")
REQUIRED_KEYS: Tuple[str, ...] = (
    "cpu_usage",
    "memory_usage",
    "swap_usage",
    "filesystem_usage",
    "filesystem_inodes",
    "load_per_core",
    "cpu_iowait",
    "disk_io_utilisation",
)
# docs/alerts.md as Prometheus serves it (prometheus/user/runbooks.html,
# --web.user-assets); Prometheus fills in its own external URL.
DEFAULT_RUNBOOK_BASE_URL = "{{ $externalURL }}/user/runbooks.html"

_DURATION = re.compile(r"(?:\d+y)?(?:\d+w)?(?:\d+d)?(?:\d+h)?(?:\d+m)?(?:\d+s)?(?:\d+ms)?")
_KEY = re.compile(r"[a-z][a-z0-9_]*")
_ALERTNAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# {name} placeholders, but not the {{ ... }} of Prometheus templates.
_PLACEHOLDER = re.compile(r"(?<!\{)\{([A-Za-z_][A-Za-z0-9_]*)\}(?!\})")
PLACEHOLDERS: Tuple[str, ...] = ("threshold", "for")

_TOP_FIELDS = ("runbook_base_url", "alerts")
_ALERT_FIELDS = ("alert", "unit", "direction", "summary", "description", "value", "levels", "groups")
# Keys whose alert watches a list of process groups, given as `groups` (the
# names the agent gives its groups; [] turns the alert off).
GROUP_KEYS: Tuple[str, ...] = ("must_run_groups",)
# The `value` annotation when the file gives none: the current value in the unit.
VALUE_TEMPLATES: Dict[str, str] = {
    "percentunit": "{{ $value | humanizePercentage }}",
    "bytes": "{{ $value | humanize1024 }}B",
    "s": "{{ $value | humanizeDuration }}",
    "short": "{{ $value | humanize }}",
    "cps": "{{ $value | humanize }}/s",
}
_LEVEL_FIELDS = ("severity", "threshold", "for")


class ThresholdsError(ValueError):
    """config/alerting.yaml is not acceptable; the message names each key path."""


@dataclass(frozen=True)
class Level:
    """One level of an alert: fires at ``severity`` past ``threshold`` for ``for_``."""

    severity: str
    threshold: float
    for_: str


@dataclass(frozen=True)
class AlertThreshold:
    """Everything config/alerting.yaml says about one alert."""

    key: str
    alert: str
    unit: str
    levels: Tuple[Level, ...]
    summary: str
    description: str
    direction: str = "above"  # "below": fires while the value is under the threshold
    value: Optional[str] = None  # None: VALUE_TEMPLATES[unit]; "": no value annotation
    groups: Tuple[str, ...] = ()  # the process groups a GROUP_KEYS alert watches

    def value_template(self) -> str:
        """The `value` annotation's template; empty when the alert has none."""
        return VALUE_TEMPLATES[self.unit] if self.value is None else self.value


@dataclass(frozen=True)
class AlertingConfig:
    """The whole file: runbook location and the alerts keyed by key."""

    runbook_base_url: str
    alerts: Dict[str, AlertThreshold]


def load(path: Optional[Path] = None) -> Dict[str, AlertThreshold]:
    """The alerts of ``path`` (default: the repository's file), keyed by key."""
    return load_config(path).alerts


def load_config(path: Optional[Path] = None) -> AlertingConfig:
    """Read and validate the whole file; every problem is reported at once."""
    path = Path(path) if path is not None else DEFAULT_PATH
    try:
        doc = load_yaml_file(str(path))
    except ConfigFileError as exc:
        raise ThresholdsError(f"{path}: {'cannot read: ' if exc.unreadable else ''}{exc}") from None
    errors: List[str] = []
    config = parse(doc, errors)
    if errors:
        raise ThresholdsError(f"{path}: " + ("\n  ".join(["invalid thresholds:"] + errors)))
    assert config is not None
    return config


def parse(doc: Any, errors: List[str]) -> Optional[AlertingConfig]:
    """Validate a parsed document, appending 'key.path: problem' to ``errors``."""
    if not isinstance(doc, dict):
        errors.append(f"(top level): must be a mapping with an 'alerts' key, got {_kind(doc)}")
        return None
    _unknown(doc, _TOP_FIELDS, "", errors)
    base = doc.get("runbook_base_url", DEFAULT_RUNBOOK_BASE_URL)
    if not isinstance(base, str) or not base.strip() or "#" in base:
        errors.append(f"runbook_base_url: must be a URL or path without '#', got {base!r}")
        base = DEFAULT_RUNBOOK_BASE_URL
    raw = doc.get("alerts")
    if not isinstance(raw, dict) or not raw:
        errors.append(f"alerts: must be a non-empty mapping of alert keys, got {_kind(raw)}")
        return None
    alerts: Dict[str, AlertThreshold] = {}
    names: Dict[str, str] = {}
    for key, body in raw.items():
        alert = _parse_alert(key, body, errors)
        if alert is None:
            continue
        if alert.alert in names:
            errors.append(f"alerts.{key}.alert: {alert.alert!r} is already the name of alerts.{names[alert.alert]}")
        names[alert.alert] = key
        alerts[key] = alert
    for key in REQUIRED_KEYS:
        if key not in raw:
            errors.append(f"alerts.{key}: missing (the dashboards and rules need it)")
    return AlertingConfig(base.rstrip(), alerts)


def _parse_alert(key: Any, body: Any, errors: List[str]) -> Optional[AlertThreshold]:
    where = f"alerts.{key}"
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        errors.append(f"{where}: key must be lowercase letters, digits and '_'")
        return None
    if not isinstance(body, dict):
        errors.append(f"{where}: must be a mapping, got {_kind(body)}")
        return None
    before = len(errors)
    _unknown(body, _ALERT_FIELDS, where, errors)
    name = body.get("alert")
    if not isinstance(name, str) or not _ALERTNAME.fullmatch(name):
        errors.append(f"{where}.alert: must be an alert name like HostHighCpuUsage, got {name!r}")
    unit = body.get("unit")
    if unit not in UNITS:
        errors.append(f"{where}.unit: must be one of {', '.join(UNITS)}, got {unit!r}")
    direction = body.get("direction", "above")
    if direction not in DIRECTIONS:
        errors.append(f"{where}.direction: must be above or below, got {direction!r}")
    texts = {}
    for field in ("summary", "description"):
        text = body.get(field)
        if not isinstance(text, str) or not text.strip():
            errors.append(f"{where}.{field}: must be a non-empty string, got {text!r}")
            continue
        _check_placeholders(text, f"{where}.{field}", errors)
        texts[field] = text.strip()
    value = body.get("value")
    if value is not None and not isinstance(value, str):
        errors.append(f"{where}.value: must be a Prometheus template string, or \"\" for no value annotation, got {_kind(value)}")
    elif value is not None:
        value = value.strip()
        _check_placeholders(value, f"{where}.value", errors)
    levels = _parse_levels(body.get("levels"), where, direction, errors)
    groups = _parse_groups(key, body, where, errors)
    if len(errors) > before:
        return None
    return AlertThreshold(key, name, unit, levels, texts["summary"], texts["description"], direction, value, groups)


def _parse_groups(key: str, body: Mapping[str, Any], where: str, errors: List[str]) -> Tuple[str, ...]:
    """The `groups` of a GROUP_KEYS alert: process group names as the agent
    forms them (its pinned_groups take the same names), each once."""
    if key not in GROUP_KEYS:
        if "groups" in body:
            errors.append(f"{where}.groups: only {', '.join(GROUP_KEYS)} takes a list of process groups")
        return ()
    raw = body.get("groups")
    if raw is None:
        errors.append(f"{where}.groups: missing: list the process groups that must run, or [] to turn the alert off")
        return ()
    try:
        check_group_names(raw)
    except OptionError as exc:
        errors.append(f"{where}.groups: {exc}")
        return ()
    repeated = sorted({name for name in raw if raw.count(name) > 1})
    if repeated:
        errors.append(f"{where}.groups: {', '.join(map(repr, repeated))} listed twice")
    return tuple(raw)


def _check_placeholders(text: str, where: str, errors: List[str]) -> None:
    for placeholder in _PLACEHOLDER.findall(text):
        if placeholder not in PLACEHOLDERS:
            errors.append(f"{where}: unknown placeholder {{{placeholder}}} (known: {{threshold}}, {{for}})")


def _parse_levels(raw: Any, where: str, direction: str, errors: List[str]) -> Tuple[Level, ...]:
    where = f"{where}.levels"
    if not isinstance(raw, list) or not raw:
        errors.append(f"{where}: must be a non-empty list of {{severity, threshold, for}}, got {_kind(raw)}")
        return ()
    levels: List[Level] = []
    for i, item in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(item, dict):
            errors.append(f"{at}: must be a mapping with severity, threshold and for, got {_kind(item)}")
            continue
        before = len(errors)
        _unknown(item, _LEVEL_FIELDS, at, errors)
        severity = item.get("severity")
        if severity not in SEVERITIES:
            errors.append(f"{at}.severity: must be one of {', '.join(SEVERITIES)}, got {severity!r}")
        threshold = item.get("threshold")
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
            errors.append(f"{at}.threshold: must be a finite number, got {threshold!r}")
        duration = item.get("for")
        if not isinstance(duration, str) or not duration or not _DURATION.fullmatch(duration):
            errors.append(f"{at}.for: must be a Prometheus duration like 30s, 5m or 1h, got {duration!r}")
        if len(errors) == before:
            levels.append(Level(severity, float(threshold), duration))
    if len(levels) != len(raw):
        return ()
    severities = [lv.severity for lv in levels]
    if len(set(severities)) != len(severities):
        errors.append(f"{where}: each severity may appear once, got {severities}")
    if len({lv.threshold for lv in levels}) != len(levels):
        errors.append(f"{where}: thresholds must differ between levels")
    ordered = tuple(sorted(levels, key=lambda lv: lv.threshold))
    # More urgent levels sit further past the threshold: higher when firing
    # above it, lower when firing below it.
    ranks = [SEVERITIES.index(lv.severity) for lv in ordered]
    if direction == "below":
        ranks.reverse()
    if ranks != sorted(ranks):
        errors.append(f"{where}: a more severe level must have a {'lower' if direction == 'below' else 'higher'} threshold")
    return ordered


def _unknown(mapping: Mapping[Any, Any], known: Tuple[str, ...], where: str, errors: List[str]) -> None:
    for field in mapping:
        if field not in known:
            path = f"{where}.{field}" if where else str(field)
            errors.append(f"{path}: unknown key (known: {', '.join(known)})")


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"


# --------------------------------------------------------------------------
# Humanised values, for texts that quote a threshold


def humanize(value: float, unit: str) -> str:
    """``value`` written for people in ``unit``: 0.85 -> '85%', 268435456 -> '256MiB'."""
    if unit == "percentunit":
        return f"{_number(value * 100)}%"
    if unit == "bytes":
        for prefix in ("", "Ki", "Mi", "Gi", "Ti", "Pi"):
            if abs(value) < 1024 or prefix == "Pi":
                return f"{_number(value)}{prefix}B"
            value /= 1024
    if unit == "s":
        return duration_text(value)
    if unit == "cps":
        return f"{_number(value)}/s"
    return _number(value)


def duration_text(seconds: float) -> str:
    """Seconds as a Prometheus-style duration: 300 -> '5m', 5400 -> '1h30m'."""
    if seconds <= 0 or not float(seconds).is_integer():
        return f"{_number(seconds)}s"
    out, rest = "", int(seconds)
    for suffix, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out += f"{rest // size}{suffix}"
            rest %= size
    return out


def render_text(text: str, alert: AlertThreshold, level: Level) -> str:
    """``text`` with {threshold} and {for} filled in for ``level``."""
    values = {"threshold": humanize(level.threshold, alert.unit), "for": level.for_}
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def _number(value: float) -> str:
    value = round(float(value), 6)  # 0.15 * 100 is 15.000000000000002
    if value.is_integer():
        return str(int(value))
    return f"{value:.6g}"
