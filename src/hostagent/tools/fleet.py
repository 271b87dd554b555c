"""Every host Prometheus scrapes, one row each, for ``hostagent top --prometheus``.

The figures are the quantities of ``hostagent.promql`` that the alerts and
dashboards read (see ``queries``), over the job's hosts. Rates are taken
over the last RATE_WINDOW: several scrapes at usual intervals. (The agent's
counters move once per collector run; over just the last two scrapes,
``irate`` would read 0 whenever both scrapes saw the same run.)
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional, Tuple

from .. import promql as q
from .promapi import Prometheus
from .queries import cpu_utilisation, scope

HostKey = Tuple[str, str]
RATE_WINDOW = "2m"


class FleetSource:
    def __init__(self, prom: Prometheus, job: str):
        self.prom = prom
        self.scope = scope(job, window=RATE_WINDOW)

    @property
    def url(self) -> str:
        return self.prom.url

    def queries(self) -> Dict[str, str]:
        s = self.scope
        return {
            "up": f"up{s.sel()}",
            "cpu": cpu_utilisation(s),
            "memory": q.memory_utilisation.expr(s),
            "swap": q.swap_utilisation.expr(s),
            "load5_per_core": q.load5_per_cpu.expr(s),
            # The fullest mount the filesystem alert watches (writable ones).
            "disk": f"max without (device, fstype, mountpoint) ({self.writable_usage()})",
            "receive": q.network_bytes["receive"].expr(s),
            "transmit": q.network_bytes["transmit"].expr(s),
            "pressure_cpu": q.pressure[("cpu", "waiting")].expr(s),
        }

    def writable_usage(self) -> str:
        return f"{q.filesystem_usage(self.scope)} {q.WRITABLE}"

    def fetch(self) -> Dict[str, Any]:
        """{"hosts": [...], "alerts": [...]} from one round of instant queries."""
        now = time.time()
        hosts: Dict[HostKey, Dict[str, Any]] = {}
        for field, expr in self.queries().items():
            for series in self.prom.query(expr, now):
                m = series["metric"]
                key = (m.get("job", ""), m.get("instance", ""))
                if not key[1]:
                    continue
                row = hosts.setdefault(key, {"job": key[0], "instance": key[1]})
                row[field] = float(series["value"][1])
        # Which mount is the fullest, per host.
        for series in self.prom.query(q.top(1, self.writable_usage()), now):
            m = series["metric"]
            row = hosts.get((m.get("job", ""), m.get("instance", "")))
            if row is not None:
                row["disk_mountpoint"] = m.get("mountpoint", "")
        alerts: List[Dict[str, str]] = []
        for series in self.prom.query('ALERTS{alertstate="firing"}', now):
            m = series["metric"]
            alerts.append({k: v for k, v in m.items() if k not in ("__name__", "alertstate")})
            row = hosts.get((m.get("job", ""), m.get("instance", "")))
            if row is not None:
                row.setdefault("alerts", []).append(m.get("alertname", ""))
        rows = []
        for row in hosts.values():
            row["up"] = row.get("up") == 1
            row.setdefault("alerts", [])
            row["alerts"] = sorted(set(row["alerts"]))
            rows.append(row)
        return {"source": self.url, "time": now, "hosts": rows, "alerts": alerts, "pressure": any("pressure_cpu" in r for r in rows)}


SORT_FIELDS = {"cpu": "cpu", "memory": "memory", "disk": "disk", "network": None}


def sort_hosts(rows: List[Dict[str, Any]], key: str) -> List[Dict[str, Any]]:
    """Down hosts first (they need a look), then busiest first by ``key``."""

    def value(r: Dict[str, Any]) -> float:
        if key == "network":
            return (r.get("receive") or 0.0) + (r.get("transmit") or 0.0)
        v: Optional[float] = r.get(SORT_FIELDS[key])
        return -1.0 if v is None else v

    return sorted(rows, key=lambda r: (r["up"], -value(r), r["instance"]))
