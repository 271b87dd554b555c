"""Where Alertmanager sends an alert, read from the configuration it runs.

``hostagent alerts test`` uses it to know how long the route waits before
its first notification (``group_wait``) and which channels the receiver has,
so it can tell afterwards whether the test alert was delivered::

    >>> route = find_route({"route": {"receiver": "chat", "routes": [
    ...     {"matchers": ['severity="critical"'], "receiver": "pager", "group_wait": "10s"}]}},
    ...     {"severity": "critical"})
    >>> route.receiver, route.group_wait
    ('pager', '10s')
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Tuple

# Alertmanager's defaults for a route that sets nothing.
DEFAULTS = {"group_wait": "30s", "group_interval": "5m", "repeat_interval": "4h"}
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(?:"((?:[^"\\]|\\.)*)"|(.*?))\s*$')


class RouteError(ValueError):
    """The configuration holds a matcher this reader does not understand."""


@dataclass(frozen=True)
class Route:
    """The route an alert ends at, with the timings it inherited."""

    receiver: str
    group_wait: str
    group_interval: str


def parse_matcher(text: str) -> Tuple[str, str, str]:
    """``name="value"`` (or =~, !=, !~; the value may be unquoted) as (name, op, value)."""
    found = _MATCHER.fullmatch(text.strip().strip("{}"))
    if not found:
        raise RouteError(f"cannot read matcher {text!r}")
    name, op, quoted, bare = found.groups()
    value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
    return name, op, value


def _matches(route: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    checks = [parse_matcher(m) for m in route.get("matchers") or []]
    checks += [(k, "=", v) for k, v in (route.get("match") or {}).items()]
    checks += [(k, "=~", v) for k, v in (route.get("match_re") or {}).items()]
    for name, op, value in checks:
        have = labels.get(name, "")
        hit = re.fullmatch(value, have) is not None if "~" in op else have == value
        if hit == op.startswith("!"):
            return False
    return True


def _walk(route: Mapping[str, Any], labels: Mapping[str, str], inherited: Dict[str, str]) -> List[Dict[str, str]]:
    here = dict(inherited)
    here.update({k: str(route[k]) for k in ("receiver", "group_wait", "group_interval") if k in route})
    ends: List[Dict[str, str]] = []
    for child in route.get("routes") or []:
        if _matches(child, labels):
            ends += _walk(child, labels, here)
            if not child.get("continue"):
                break
    return ends or [here]


def find_routes(config: Mapping[str, Any], labels: Mapping[str, str]) -> List[Route]:
    """Every route an alert with ``labels`` ends at (more than one with ``continue``)."""
    ends = _walk(config["route"], labels, dict(DEFAULTS))
    return [Route(end["receiver"], end["group_wait"], end["group_interval"]) for end in ends]


def find_route(config: Mapping[str, Any], labels: Mapping[str, str]) -> Route:
    """The first route an alert with ``labels`` ends at."""
    return find_routes(config, labels)[0]


def integrations(config: Mapping[str, Any], receiver: str) -> Counter:
    """How many entries of each integration (email, slack, webhook, ...) ``receiver`` has."""
    for item in config.get("receivers") or []:
        if item.get("name") == receiver:
            return Counter({key[: -len("_configs")]: len(value or []) for key, value in item.items() if key.endswith("_configs") and value})
    return Counter()
