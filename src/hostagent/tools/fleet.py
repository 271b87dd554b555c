"""Every host Prometheus scrapes, one row each, for ``hostagent top --prometheus``.

Rates are taken over the last RATE_WINDOW: several scrapes at usual
intervals. (The agent's counters move once per collector run; over just the
last two scrapes, ``irate`` would read 0 whenever both scrapes saw the same
run.)
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional, Tuple

from .promapi import Prometheus

HostKey = Tuple[str, str]
RATE_WINDOW = "2m"


def _q(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


class FleetSource:
    def __init__(self, prom: Prometheus, job: str):
        self.prom = prom
        self.sel = f'job="{_q(job)}"'

    @property
    def url(self) -> str:
        return self.prom.url

    def queries(self) -> Dict[str, str]:
        s = self.sel
        return {
            "up": f"up{{{s}}}",
            "cpu": f'1 - avg by (job, instance) (sum without (mode) (rate(host_cpu_seconds_total{{{s},mode=~"idle|iowait|steal"}}[{RATE_WINDOW}])))',
            "memory": f"1 - host_memory_available_bytes{{{s}}} / host_memory_total_bytes{{{s}}}",
            "swap": f"host_swap_used_bytes{{{s}}} / (host_swap_total_bytes{{{s}}} > 0)",
            "load5_per_core": f"host_load5{{{s}}} / on (job, instance) host_cpu_cores{{{s}}}",
            "disk": f"max by (job, instance) (host_filesystem_usage_ratio{{{s}}})",
            "receive": f'sum by (job, instance) (rate(host_network_receive_bytes_total{{{s},device!="lo"}}[{RATE_WINDOW}]))',
            "transmit": f'sum by (job, instance) (rate(host_network_transmit_bytes_total{{{s},device!="lo"}}[{RATE_WINDOW}]))',
            "pressure_cpu": f"rate(host_pressure_cpu_waiting_seconds_total{{{s}}}[{RATE_WINDOW}])",
        }

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
        for series in self.prom.query(f"topk by (job, instance) (1, host_filesystem_usage_ratio{{{self.sel}}})", now):
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
