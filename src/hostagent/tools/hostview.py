"""One host right now, from its agent's ``/metrics``: the figures ``hostagent top`` shows.

:class:`AgentSource` scrapes the agent; :class:`HostModel` turns successive
scrapes into a plain dict (the ``--json`` output): counters become rates
between two runs of the collector that produced them, timed by the agent's
own ``hostagent_collector_last_success_timestamp_seconds``, so a refresh
faster than the collector neither shows zeros nor spikes.

Families from newer agents are used when present: PSI (``host_pressure_*``)
adds a pressure line. The process tables come from what the agent has: its
live process list (``/api/v1/processes``, else the per-pid series
``host_process_*`` of its top N), process groups (``host_process_group_*``),
and services and containers (``host_cgroup_*``).
"""

from __future__ import annotations

import collections
import math
import time
from typing import Any, Deque, Dict, List, Optional, Tuple

from .. import promql
from . import ToolError, stats
from .connection import Connection

Labels = Tuple[Tuple[str, str], ...]
Samples = Dict[str, List[Tuple[Dict[str, str], float]]]

# Which collector produces a family (by name prefix), to time its rates; the
# first name the agent knows wins.
COLLECTOR_OF: Tuple[Tuple[str, Tuple[str, ...]], ...] = (
    ("host_cpu_", ("cpu",)),
    ("host_disk_", ("diskio",)),
    ("host_network_", ("network",)),
    ("host_pressure_", ("pressure",)),
    ("host_process_group_", ("process_groups", "processes")),
    ("host_process_", ("processes",)),
    ("host_cgroup_", ("cgroups", "cgroup")),
)
TREND_WINDOW = 1800.0  # seconds of free-space history behind "full in"
TREND_MIN_SPAN = 120.0
PRESSURE = ("cpu_waiting", "memory_waiting", "memory_stalled", "io_waiting", "io_stalled")
PROCESS_API = "/api/v1/processes"
API_LIMIT = 100  # processes asked for, by CPU and by memory: more than a screen holds
# The process tables, in the order the switch key goes through them.
TABLES = ("processes", "groups", "services")


def parse_exposition(text: str) -> Samples:
    """Samples by sample name from the Prometheus text format."""
    from prometheus_client.parser import text_string_to_metric_families

    out: Samples = {}
    try:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                out.setdefault(s.name, []).append((dict(s.labels), float(s.value)))
    except ValueError as exc:
        raise ToolError(f"the answer is not a Prometheus exposition ({exc})") from None
    return out


class AgentSource:
    """Scrapes one agent's /metrics."""

    def __init__(self, conn: Connection):
        self.conn = conn
        conn.what = "agent"

    @property
    def url(self) -> str:
        return self.conn.url

    def fetch(self) -> Tuple[float, Samples]:
        resp = self.conn.get("/metrics")
        samples = parse_exposition(resp.text)
        if not any(name.startswith(("host_", "hostagent_")) for name in samples):
            raise ToolError(f"{self.url}/metrics has no host_ metrics: is it a hostagent?")
        return time.time(), samples

    def process_list(self, limit: int = API_LIMIT) -> Optional[Dict[str, Any]]:
        """The agent's live process list (``/api/v1/processes``), the busiest
        by CPU and by memory of one collector run together:
        ``{"time", "total", "rows"}``. None where the agent serves none (an
        older agent, the processes collector off, or its list not fresh)."""
        answers: Dict[str, Dict[str, Any]] = {}
        for _ in range(3):
            for sort in ("cpu", "memory"):
                resp = self.conn.get(PROCESS_API, params={"sort": sort, "limit": limit}, ok=(200, 400, 404, 503))
                if resp.status_code != 200:
                    return None
                try:
                    answers[sort] = resp.json()
                except ValueError:
                    return None
            # The two lists come from one run unless the collector ran between the requests.
            if answers["cpu"].get("timestamp") == answers["memory"].get("timestamp"):
                break
        else:
            answers.pop("memory")
        rows: Dict[int, Dict[str, Any]] = {}
        try:
            first = answers["cpu"]
            total = first.get("memory_total_bytes")
            for body in answers.values():
                for p in body["processes"]:
                    rss = p.get("resident_memory_bytes")
                    rows[int(p["pid"])] = {
                        "pid": int(p["pid"]),
                        "user": p.get("user", ""),
                        "state": p.get("state", ""),
                        "cpu": p.get("cpu_cores"),
                        "rss": rss,
                        "memory_ratio": _ratio(rss, total),
                        "threads": p.get("threads"),
                        "group": p.get("group", ""),
                        "name": p.get("name", ""),
                    }
            return {"source": PROCESS_API, "time": float(first["timestamp"]), "total": first.get("total_processes"), "rows": list(rows.values())}
        except (ValueError, KeyError, TypeError, AttributeError):
            return None  # not the list this tool knows: show what /metrics has


class Rates:
    """Per-second rates of counters between two distinct collector runs."""

    def __init__(self) -> None:
        self.prev: Dict[Tuple[str, Labels], Tuple[float, float]] = {}
        self.rate: Dict[Tuple[str, Labels], Optional[float]] = {}

    def update(self, key: Tuple[str, Labels], t: float, value: float) -> Optional[float]:
        prev = self.prev.get(key)
        if prev is None:
            self.prev[key] = (t, value)
            return None
        if t > prev[0]:
            self.rate[key] = (value - prev[1]) / (t - prev[0]) if value >= prev[1] else None  # None: counter reset
            self.prev[key] = (t, value)
        return self.rate.get(key)


def _key(labels: Dict[str, str]) -> Labels:
    return tuple(sorted(labels.items()))


def _one(samples: Samples, name: str, **match: str) -> Optional[float]:
    for labels, value in samples.get(name, []):
        if all(labels.get(k) == v for k, v in match.items()):
            return value
    return None


def _ratio(part: Optional[float], whole: Optional[float]) -> Optional[float]:
    if part is None or not whole:
        return None
    return part / whole


class HostModel:
    """Keeps what is needed between scrapes (previous counters, free-space history)."""

    def __init__(self) -> None:
        self.rates = Rates()
        self.free: Dict[str, Deque[Tuple[float, float]]] = {}

    def _collector_time(self, samples: Samples, name: str, scraped: float) -> float:
        stamps = {labels.get("collector"): value for labels, value in samples.get("hostagent_collector_last_success_timestamp_seconds", [])}
        for prefix, collectors in COLLECTOR_OF:
            if name.startswith(prefix):
                for collector in collectors:
                    if collector in stamps:
                        return stamps[collector]
        return scraped

    def _rates(self, samples: Samples, name: str, scraped: float) -> List[Tuple[Dict[str, str], Optional[float]]]:
        t = self._collector_time(samples, name, scraped)
        return [(labels, self.rates.update((name, _key(labels)), t, value)) for labels, value in samples.get(name, [])]

    def view(self, scraped: float, samples: Samples, source: str, process_list: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """The whole picture as plain data."""
        info = next((labels for labels, _ in samples.get("host_os_info", [])), {})
        boot = _one(samples, "host_boot_time_seconds")
        return {
            "source": source,
            "time": scraped,
            "hostname": info.get("hostname", ""),
            "os": " ".join(x for x in (info.get("system", ""), info.get("release", "")) if x),
            "uptime_seconds": scraped - boot if boot else None,
            "cpu": self.cpu(samples, scraped),
            "load": self.load(samples),
            "pressure": self.pressure(samples, scraped),
            "memory": self.memory(samples),
            "swap": self.swap(samples),
            "filesystems": self.filesystems(samples, scraped),
            "disks": self.disks(samples, scraped),
            "network": self.network(samples, scraped),
            "tcp": self.tcp(samples),
            "processes": self.processes(samples, scraped, process_list),
            "collectors": self.collectors(samples, scraped),
        }

    def cpu(self, samples: Samples, scraped: float) -> Dict[str, Any]:
        per_core = sorted(
            ({"cpu": labels.get("cpu", ""), "usage": value} for labels, value in samples.get("host_cpu_core_usage_ratio", [])),
            key=lambda c: (len(c["cpu"]), c["cpu"]),
        )
        modes: Dict[str, float] = {}
        complete = True
        for labels, rate in self._rates(samples, "host_cpu_seconds_total", scraped):
            if rate is None:
                complete = False
                continue
            modes[labels.get("mode", "")] = modes.get(labels.get("mode", ""), 0.0) + rate
        total = sum(modes.values())
        shares = {mode: v / total for mode, v in sorted(modes.items())} if complete and total > 0 else None
        return {"usage": _one(samples, "host_cpu_usage_ratio"), "cores": _one(samples, "host_cpu_cores"), "per_core": per_core, "modes": shares}

    def load(self, samples: Samples) -> Dict[str, Optional[float]]:
        cores = _one(samples, "host_cpu_cores")
        l5 = _one(samples, "host_load5")
        return {"load1": _one(samples, "host_load1"), "load5": l5, "load15": _one(samples, "host_load15"), "load5_per_core": _ratio(l5, cores)}

    def pressure(self, samples: Samples, scraped: float) -> Optional[Dict[str, Optional[float]]]:
        names = [f"host_pressure_{p}_seconds_total" for p in PRESSURE]
        if not any(n in samples for n in names):
            return None
        out: Dict[str, Optional[float]] = {}
        for p, name in zip(PRESSURE, names):
            if name in samples:
                rates = [r for _, r in self._rates(samples, name, scraped)]
                out[p] = rates[0] if rates else None
        return out

    def memory(self, samples: Samples) -> Dict[str, Optional[float]]:
        total = _one(samples, "host_memory_total_bytes")
        avail = _one(samples, "host_memory_available_bytes")
        usage = _one(samples, "host_memory_usage_ratio")
        if usage is None and total and avail is not None:
            usage = 1 - avail / total
        return {
            "total": total,
            "used": _one(samples, "host_memory_used_bytes"),
            "available": avail,
            "cached": _one(samples, "host_memory_cached_bytes"),
            "buffers": _one(samples, "host_memory_buffers_bytes"),
            "usage": usage,
        }

    def swap(self, samples: Samples) -> Dict[str, Optional[float]]:
        total = _one(samples, "host_swap_total_bytes")
        used = _one(samples, "host_swap_used_bytes")
        return {"total": total, "used": used, "usage": _ratio(used, total)}

    def filesystems(self, samples: Samples, scraped: float) -> List[Dict[str, Any]]:
        out = []
        for labels, size in samples.get("host_filesystem_size_bytes", []):
            mount = labels.get("mountpoint", "")
            avail = _one(samples, "host_filesystem_avail_bytes", mountpoint=mount)
            fs = {
                "mountpoint": mount,
                "device": labels.get("device", ""),
                "fstype": labels.get("fstype", ""),
                "size": size,
                "used": _one(samples, "host_filesystem_used_bytes", mountpoint=mount),
                "avail": avail,
                "usage": _one(samples, "host_filesystem_usage_ratio", mountpoint=mount),
                "readonly": _one(samples, "host_filesystem_readonly", mountpoint=mount) == 1,
                "error": _one(samples, "host_filesystem_device_error", mountpoint=mount) == 1,
                "days_until_full": None,
            }
            if avail is not None:
                fs["days_until_full"] = self._days_until_full(mount, scraped, avail)
            out.append(fs)
        return sorted(out, key=lambda f: f["mountpoint"])

    def _days_until_full(self, mount: str, t: float, avail: float) -> Optional[float]:
        """From a line through the free space seen in this session (up to
        TREND_WINDOW): None until TREND_MIN_SPAN of history, while free space
        is not shrinking, or when a line explains it poorly."""
        history = self.free.setdefault(mount, collections.deque())
        if not history or history[-1][1] != avail or t - history[-1][0] >= 30:
            history.append((t, avail))
        while history and t - history[0][0] > TREND_WINDOW:
            history.popleft()
        if len(history) < 3 or history[-1][0] - history[0][0] < TREND_MIN_SPAN:
            return None
        fit = stats.linear_fit(history)
        if fit is None or fit.slope >= 0 or fit.r2 < 0.5:
            return None
        when = fit.crossing(0.0)
        return None if when is None else max(0.0, (when - t) / 86400)

    def disks(self, samples: Samples, scraped: float) -> List[Dict[str, Any]]:
        rows: Dict[str, Dict[str, Any]] = {}
        for name, field in (("host_disk_read_bytes_total", "read_bytes_per_second"), ("host_disk_written_bytes_total", "written_bytes_per_second"), ("host_disk_io_time_seconds_total", "busy")):
            for labels, rate in self._rates(samples, name, scraped):
                rows.setdefault(labels.get("device", ""), {"device": labels.get("device", "")})[field] = rate
        return [rows[d] for d in sorted(rows)]

    def network(self, samples: Samples, scraped: float) -> List[Dict[str, Any]]:
        rows: Dict[str, Dict[str, Any]] = {}
        fields = (
            ("host_network_receive_bytes_total", "receive_bytes_per_second"),
            ("host_network_transmit_bytes_total", "transmit_bytes_per_second"),
            ("host_network_receive_errors_total", "receive_errors_per_second"),
            ("host_network_transmit_errors_total", "transmit_errors_per_second"),
        )
        for name, field in fields:
            for labels, rate in self._rates(samples, name, scraped):
                rows.setdefault(labels.get("device", ""), {"device": labels.get("device", "")})[field] = rate
        for labels, value in samples.get("host_network_up", []):
            rows.setdefault(labels.get("device", ""), {"device": labels.get("device", "")})["up"] = value == 1
        return [rows[d] for d in sorted(rows)]

    def tcp(self, samples: Samples) -> Dict[str, int]:
        states: Dict[str, int] = {}
        for labels, value in samples.get("host_network_connections", []):
            if labels.get("kind") in ("tcp", "tcp6"):
                states[labels.get("state", "")] = states.get(labels.get("state", ""), 0) + int(value)
        if states:
            states["total"] = sum(v for k, v in states.items() if k != "LISTEN")
        return states

    def processes(self, samples: Samples, scraped: float, process_list: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """Process counts, and the tables the agent has the data for
        (``tables``, keyed by TABLES): its live process list where it serves
        one (else its per-pid series), process groups, services and containers."""
        states = {labels.get("state", ""): int(v) for labels, v in samples.get("host_processes", [])}
        tables: Dict[str, Dict[str, Any]] = {}
        if process_list:
            tables["processes"] = process_list
        elif "host_process_cpu_usage_cores" in samples or "host_process_resident_memory_bytes" in samples:
            rows: Dict[Tuple[str, str], Dict[str, Any]] = {}
            for name, field in (("host_process_cpu_usage_cores", "cpu"), ("host_process_resident_memory_bytes", "rss"), ("host_process_memory_usage_ratio", "memory_ratio")):
                for labels, value in samples.get(name, []):
                    key = (labels.get("pid", ""), labels.get("name", ""))
                    pid = int(key[0]) if key[0].isdigit() else key[0]
                    row = rows.setdefault(key, {"pid": pid, "user": labels.get("username", ""), "state": None, "cpu": None, "rss": None, "memory_ratio": None, "name": key[1]})
                    row[field] = value
            tables["processes"] = {"source": "host_process_* (the agent's top N)", "time": self._collector_time(samples, "host_process_", scraped), "rows": list(rows.values())}
        if "host_process_group_cpu_seconds_total" in samples or "host_process_group_resident_memory_bytes" in samples:
            tables["groups"] = {"source": "host_process_group_*", "time": self._collector_time(samples, "host_process_group_", scraped), "rows": self._groups(samples, scraped)}
        if "host_cgroup_cpu_seconds_total" in samples or "host_cgroup_memory_bytes" in samples:
            tables["services"] = {"source": "host_cgroup_*", "time": self._collector_time(samples, "host_cgroup_", scraped), "rows": self._services(samples, scraped)}
        return {"count": sum(states.values()) if states else None, "states": states, "threads": _one(samples, "host_processes_threads"), "tables": tables}

    def _usage(self, samples: Samples, scraped: float, acct: Any, memory_field: str) -> Dict[str, Dict[str, Any]]:
        """Rows of one accounting of use (``promql.PROCESS_GROUPS`` or
        ``promql.CGROUPS``): CPU in cores (user and system together), memory
        and its share of the host's, processes."""
        rows: Dict[str, Dict[str, Any]] = {}
        total = _one(samples, "host_memory_total_bytes")
        prefix = acct.cpu[: -len("cpu_seconds_total")]

        def row(name: str) -> Dict[str, Any]:
            return rows.setdefault(name, {"name": name, "processes": None, "cpu": None, memory_field: None, "memory_ratio": None})

        cpu: Dict[str, List[Optional[float]]] = {}
        for labels, rate in self._rates(samples, acct.cpu, scraped):
            cpu.setdefault(labels.get(acct.label, ""), []).append(rate)
        for name, rates in cpu.items():
            # Summed over modes; unknown until every mode has a rate.
            row(name)["cpu"] = None if any(r is None for r in rates) else sum(rates)  # type: ignore[arg-type]
        for labels, value in samples.get(acct.memory, []):
            r = row(labels.get(acct.label, ""))
            r[memory_field], r["memory_ratio"] = value, _ratio(value, total)
        for labels, value in samples.get(f"{prefix}processes", []):
            row(labels.get(acct.label, ""))["processes"] = int(value)
        return rows

    def _groups(self, samples: Samples, scraped: float) -> List[Dict[str, Any]]:
        rows = self._usage(samples, scraped, promql.PROCESS_GROUPS, "rss")
        for labels, value in samples.get("host_process_group_threads", []):
            if labels.get("group", "") in rows:
                rows[labels.get("group", "")]["threads"] = int(value)
        return list(rows.values())

    def _services(self, samples: Samples, scraped: float) -> List[Dict[str, Any]]:
        rows = self._usage(samples, scraped, promql.CGROUPS, "memory")
        info = {labels.get("cgroup", ""): labels for labels, _ in samples.get("host_cgroup_info", [])}
        for name, r in rows.items():
            r["kind"] = info.get(name, {}).get("kind", "")
            r["runtime"] = info.get(name, {}).get("runtime", "")
        return list(rows.values())

    def collectors(self, samples: Samples, scraped: float) -> List[Dict[str, Any]]:
        names = set()
        fields = {
            "up": "hostagent_collector_up",
            "enabled": "hostagent_collector_enabled",
            "available": "hostagent_collector_available",
            "errors": "hostagent_collector_errors_total",
            "last_success": "hostagent_collector_last_success_timestamp_seconds",
            "interval": "hostagent_collector_interval_seconds",
        }
        values: Dict[str, Dict[str, float]] = {}
        for field, name in fields.items():
            for labels, value in samples.get(name, []):
                c = labels.get("collector", "")
                names.add(c)
                values.setdefault(c, {})[field] = value
        out = []
        for c in sorted(names):
            v = values[c]
            last = v.get("last_success")
            out.append(
                {
                    "name": c,
                    "up": None if "up" not in v else v["up"] == 1,
                    "enabled": v.get("enabled", 1) == 1,
                    "available": v.get("available", 1) == 1,
                    "errors": int(v["errors"]) if "errors" in v else None,
                    "age_seconds": scraped - last if last else None,
                    "interval": v.get("interval"),
                }
            )
        return out


def sort_rows(rows: List[Dict[str, Any]], key: str) -> List[Dict[str, Any]]:
    """Process, group or service rows busiest first by CPU or memory (disk
    and network sort by CPU here)."""

    def value(r: Dict[str, Any]) -> float:
        v = r.get("cpu") if key != "memory" else r.get("rss", r.get("memory"))
        return -1.0 if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)

    return sorted(rows, key=lambda r: (-value(r), str(r.get("name", ""))))
