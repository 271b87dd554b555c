"""A small client for Alertmanager's HTTP API v2 (alerts and silences)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Dict, List, Mapping, Sequence

import requests

# A sample line of Alertmanager's /metrics: name{integration="slack"} 3
_INTEGRATION_SAMPLE = re.compile(r'^(alertmanager_notification_requests(?:_failed)?_total)\{integration="([^"]+)"\} (\S+)$', re.M)


class AlertmanagerError(Exception):
    """Alertmanager could not be reached or refused a request; one-line message."""


def isoformat(when: dt.datetime) -> str:
    """RFC 3339 in UTC with a Z, as Alertmanager writes it."""
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> dt.datetime:
    """Parse an RFC 3339 timestamp from Alertmanager (nanoseconds allowed)."""
    text = text.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # Python before 3.11 accepts at most 6 fractional digits.
    if "." in text:
        head, tail = text.split(".", 1)
        digits = len(tail) - len(tail.lstrip("0123456789"))
        text = f"{head}.{tail[:min(digits, 6)]:0<6}{tail[digits:]}"
    return dt.datetime.fromisoformat(text)


def _reason(exc: Exception) -> str:
    """The useful end of a connection error: 'Connection refused', 'Name or service not known'."""
    found = re.findall(r"\[Errno -?\d+\] ([^'\")\]]+)", str(exc))
    return found[-1].strip() if found else "connection failed"


class Alertmanager:
    """Talks to one Alertmanager; every failure becomes an AlertmanagerError."""

    def __init__(self, url: str, timeout: float = 10.0):
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _request(self, method: str, path: str, raw: bool = False, **kwargs: Any) -> Any:
        target = f"{self.url}{path}" if raw else f"{self.url}/api/v2{path}"
        try:
            resp = requests.request(method, target, timeout=self.timeout, **kwargs)
        except requests.ConnectionError as exc:
            raise AlertmanagerError(f"cannot reach Alertmanager at {self.url} ({_reason(exc)})") from None
        except requests.Timeout:
            raise AlertmanagerError(f"cannot reach Alertmanager at {self.url} (no answer within {self.timeout:g}s)") from None
        except requests.RequestException as exc:
            raise AlertmanagerError(f"cannot reach Alertmanager at {self.url} ({exc})") from None
        if resp.status_code >= 400:
            detail = " ".join(resp.text.split())[:300] or resp.reason
            raise AlertmanagerError(f"Alertmanager at {self.url} answered {resp.status_code} to {method} {path}: {detail}")
        if raw:
            return resp.text
        if not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            raise AlertmanagerError(f"{target} did not answer JSON; is {self.url} an Alertmanager?") from None

    def alerts(self, include_suppressed: bool = True, filters: Sequence[str] = ()) -> List[Dict[str, Any]]:
        """Alerts Alertmanager holds now; suppressed (silenced or inhibited) ones
        too unless asked not to; only those matching every matcher of ``filters``
        (``name="value"``)."""
        flag = "true" if include_suppressed else "false"
        params: Dict[str, Any] = {"active": "true", "silenced": flag, "inhibited": flag, "unprocessed": "true"}
        if filters:
            params["filter"] = list(filters)
        return list(self._request("GET", "/alerts", params=params) or [])

    def status(self) -> Dict[str, Any]:
        """Alertmanager's status: version, cluster and the configuration it runs (``config.original``)."""
        return dict(self._request("GET", "/status") or {})

    def silence(self, silence_id: str) -> Dict[str, Any]:
        """One silence by ID."""
        return dict(self._request("GET", f"/silence/{requests.utils.quote(silence_id, safe='')}") or {})

    def notification_requests(self) -> Dict[str, Dict[str, float]]:
        """Notification requests Alertmanager has made so far, per integration
        (slack, email, webhook, ...): ``{"slack": {"sent": 5, "failed": 1}}``,
        where sent counts every attempt and failed the attempts that failed."""
        counts: Dict[str, Dict[str, float]] = {}
        for name, integration, value in _INTEGRATION_SAMPLE.findall(self._request("GET", "/metrics", raw=True)):
            key = "failed" if name.endswith("_failed_total") else "sent"
            counts.setdefault(integration, {"sent": 0.0, "failed": 0.0})[key] = float(value)
        return counts

    def post_alerts(self, alerts: List[Mapping[str, Any]]) -> None:
        """Send alerts as Prometheus would (labels, annotations, startsAt, endsAt)."""
        self._request("POST", "/alerts", json=list(alerts))

    def silences(self) -> List[Dict[str, Any]]:
        """Every silence Alertmanager knows, expired ones included."""
        return list(self._request("GET", "/silences") or [])

    def add_silence(self, matchers: List[Mapping[str, Any]], starts: dt.datetime, ends: dt.datetime, created_by: str, comment: str) -> str:
        """Create a silence; return its ID."""
        body = {
            "matchers": list(matchers),
            "startsAt": isoformat(starts),
            "endsAt": isoformat(ends),
            "createdBy": created_by,
            "comment": comment,
        }
        answer = self._request("POST", "/silences", json=body) or {}
        silence_id = answer.get("silenceID")
        if not silence_id:
            raise AlertmanagerError(f"Alertmanager at {self.url} created no silence (answer: {answer})")
        return str(silence_id)

    def expire_silence(self, silence_id: str) -> None:
        """Expire (end now) the silence with this ID."""
        self._request("DELETE", f"/silence/{requests.utils.quote(silence_id, safe='')}")
