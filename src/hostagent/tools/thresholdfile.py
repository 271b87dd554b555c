"""Which alert thresholds the tools colour by, and where they came from.

The same file the alert rules and dashboards are generated from, so red in
``hostagent top`` or the report means what red means on the pager.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Optional, Tuple

from . import ToolError

SYSTEM_PATH = Path("/etc/hostagent/alerting.yaml")


def candidates() -> Tuple[Path, ...]:
    """The project's config/alerting.yaml (as the rule generator finds it), then the system one."""
    from ..alerting.thresholds import DEFAULT_PATH

    return (DEFAULT_PATH, SYSTEM_PATH)


def load(explicit: Optional[str]) -> Tuple[Optional[object], str]:
    """(AlertingConfig or None, a sentence saying where the thresholds came from).

    A file named on the command line must load; otherwise the first default
    that exists is used, and with none the tools run without threshold colours."""
    from ..alerting.thresholds import ThresholdsError, load_config
    from ..project import shown

    if explicit:
        try:
            return load_config(Path(explicit)), f"thresholds from {explicit}"
        except ThresholdsError as exc:
            raise ToolError(" ".join(str(exc).split()), 2) from None
    for path in candidates():
        if path.is_file():
            try:
                return load_config(path), f"thresholds from {shown(path)}"
            except ThresholdsError as exc:
                raise ToolError(" ".join(str(exc).split()), 2) from None
    looked = ", ".join(str(p) for p in candidates())
    return None, f"no thresholds file found (looked for {looked}; give --thresholds FILE): no threshold colours"


def level_of(config: Optional[object], key: str, value: Optional[float]) -> Optional[str]:
    """The most severe level of alert ``key`` that ``value`` is past, or None."""
    if config is None or value is None:
        return None
    alert = getattr(config, "alerts", {}).get(key)
    if alert is None:
        return None
    found = None
    for lv in alert.levels:  # sorted by threshold
        past = value > lv.threshold if alert.direction == "above" else value < lv.threshold
        if past and (found is None or _rank(lv.severity) > _rank(found)):
            found = lv.severity
    return found


def threshold(config: Optional[object], key: str, severity: str = "warning") -> Optional[float]:
    """The threshold of ``severity`` for alert ``key``, if the file has it."""
    if config is None:
        return None
    alert = getattr(config, "alerts", {}).get(key)
    for lv in getattr(alert, "levels", ()):
        if lv.severity == severity:
            return lv.threshold
    return None


def _rank(severity: str) -> int:
    from ..alerting.thresholds import SEVERITIES

    return SEVERITIES.index(severity) if severity in SEVERITIES else -1


@functools.lru_cache(maxsize=None)
def alert_comparing(series: str) -> Optional[str]:
    """The key of the threshold alert whose rule compares ``series`` (a
    recorded series as ``hostagent.promql`` names it), or None when no alert
    does: the tools colour a figure by the alert that watches the same quantity."""
    from ..alerting.rules import threshold_conditions

    return next((key for key, condition in threshold_conditions().items() if getattr(condition, "value", None) == series), None)
