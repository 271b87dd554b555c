"""Thirty days of made-up history with known answers, for the report and export tests.

Two hosts, as the agent names its series:

- ``web-1:9100``: one core, busy 85 % from 09:00 to 17:00 UTC and 10 % the
  rest of the day; ``/data`` loses free space at a steady rate (with a little
  noise) and fills FILL_DAYS_AFTER_END days after the last sample; ``eth0``
  receives 5 MB/s from 12:00 to 14:00 UTC and 1 MB/s otherwise; PSI CPU
  counters; three process groups and three services and containers, busier
  (and the services bigger) in the busy hours; HostHighCpuUsage fired three
  times.
- ``idle-1:9100``: four cores at 2 %, memory 10 % used, no swap, no PSI, one
  service and no process groups; HostagentDown fired once.
- ``gone-1:9100``: no data at all, only a HostagentDown incident; and
  HostagentTargetsMissing fired once, about no host in particular.

Samples every STEP seconds (alerts every ALERT_STEP), written as OpenMetrics
for ``promtool tsdb create-blocks-from openmetrics``.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Tuple

DAY = 86400
STEP = 300
ALERT_STEP = 60
DAYS = 30
JOB = "hostagent"
WEB, IDLE, GONE = "web-1:9100", "idle-1:9100", "gone-1:9100"
GIB = 1024**3

BUSY, QUIET = 0.85, 0.10
BUSY_HOURS = range(9, 17)
IDLE_CPU = 0.02
RX_PEAK, RX_BASE, TX = 5e6, 1e6, 2e5
PEAK_HOURS = range(12, 14)
DATA_SIZE = 1e12
DATA_AVAIL_START = 400e9
FILL_DAYS_AFTER_END = 20
# Bytes per second /data loses: empty at START + (DAYS + FILL_DAYS_AFTER_END) days.
DATA_RATE = DATA_AVAIL_START / ((DAYS + FILL_DAYS_AFTER_END) * DAY)
NOISE = 1e9  # +- bytes of noise on /data's free space
ROOT_SIZE, ROOT_AVAIL = 100e9, 70e9
MEM_TOTAL = 16 * GIB
WEB_MEM_USED, IDLE_MEM_USED = 0.60, 0.10
WEB_SWAP_TOTAL, WEB_SWAP_USED = 2 * GIB, 0.25
GROUPS = {"postgres": 0.5, "nginx": 0.1, "backup": 0.05}  # core-seconds per second while busy, per group
GROUP_RSS = {"postgres": 4 * GIB, "nginx": 200e6, "backup": 50e6}
# Services and containers (host_cgroup_*) per host: cores while busy (a
# tenth of it otherwise), memory while quiet and while busy.
CGROUPS = {
    WEB: {"postgresql.service": (0.45, 3 * GIB, 5 * GIB), "docker/app": (0.2, GIB, 1.5 * GIB), "nginx.service": (0.12, 150e6, 300e6)},
    IDLE: {"sshd.service": (0.001, 8e6, 8e6)},
}
MODES = {"user": 0.75, "system": 0.25}  # how CPU time splits between modes


@dataclass(frozen=True)
class Incident:
    alertname: str
    instance: str
    severity: str
    start: float  # seconds after START when it began firing
    duration: float  # seconds
    labels: Tuple[Tuple[str, str], ...] = ()


def incidents() -> List[Incident]:
    return [
        Incident("HostHighCpuUsage", WEB, "warning", 4 * DAY + 10 * 3600, 2 * 3600),
        Incident("HostHighCpuUsage", WEB, "warning", 11 * DAY + 9 * 3600 + 1800, 45 * 60),
        Incident("HostHighCpuUsage", WEB, "warning", 27 * DAY + 15 * 3600, 30 * 60),
        Incident("HostagentDown", IDLE, "critical", 20 * DAY + 3 * 3600, 20 * 60),
        # An alert about one service of a host: its own label comes along.
        Incident("HostCgroupOomKillDetected", WEB, "warning", 16 * DAY + 14 * 3600, 10 * 60, (("cgroup", "docker/app"),)),
        # A host that sent nothing in the range, and an alert about no host in particular.
        Incident("HostagentDown", GONE, "critical", 2 * DAY, 3 * 3600),
        Incident("HostagentTargetsMissing", "", "critical", 25 * DAY + 3600, 15 * 60),
    ]


def busy(t: float) -> float:
    hour = int(t % DAY) // 3600
    return BUSY if hour in BUSY_HOURS else QUIET


def rx_rate(t: float) -> float:
    hour = int(t % DAY) // 3600
    return RX_PEAK if hour in PEAK_HOURS else RX_BASE


def data_avail(t: float, start: float, noise: float) -> float:
    return DATA_AVAIL_START - DATA_RATE * (t - start) + noise


def fill_time(start: float) -> float:
    """When /data's free space reaches zero, without the noise."""
    return start + DATA_AVAIL_START / DATA_RATE


def cumulative(times: List[float], rate: Callable[[float], float], first: float) -> List[float]:
    """A counter's values at ``times``, from ``first``, rising at rate(t) between samples."""
    out, total = [], first
    for k, t in enumerate(times):
        if k:
            total += rate(times[k - 1]) * (t - times[k - 1])
        out.append(total)
    return out


def _where(inc: Incident) -> Dict[str, str]:
    """An alert's instance and job labels; none for an alert about no host."""
    return {"instance": inc.instance, "job": JOB} if inc.instance else {}


def _labels(pairs: Dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in pairs.items()) + "}"


def _num(v: float) -> str:
    return repr(float(v))


class History:
    """The series, keyed by family, for the 30 days ending at ``end``."""

    def __init__(self, end: float):
        self.end = float(end)
        self.start = self.end - DAYS * DAY
        self.times = [self.start + i * STEP for i in range(DAYS * DAY // STEP + 1)]
        rng = random.Random(20260501)
        self.noise = [rng.uniform(-NOISE, NOISE) for _ in self.times]

    def counter(self, rate: Callable[[float], float]) -> List[float]:
        return cumulative(self.times, rate, 1000.0)

    def families(self) -> List[Tuple[str, str, List[Tuple[Dict[str, str], List[float]]]]]:
        """(family name, type, [(labels, values at self.times)])."""
        if not hasattr(self, "_families"):
            self._families = list(self._make_families())
        return self._families

    def _make_families(self) -> Iterator[Tuple[str, str, List[Tuple[Dict[str, str], List[float]]]]]:
        w, i = {"instance": WEB, "job": JOB}, {"instance": IDLE, "job": JOB}
        n = len(self.times)

        def const(v: float) -> List[float]:
            return [v] * n

        yield "host_cpu_seconds", "counter", [
            ({**w, "cpu": "0", "mode": "idle"}, self.counter(lambda t: 1 - busy(t))),
            ({**w, "cpu": "0", "mode": "user"}, self.counter(busy)),
        ] + [({**i, "cpu": str(c), "mode": mode}, self.counter(lambda t, share=share: share)) for c in range(4) for mode, share in (("idle", 1 - IDLE_CPU), ("user", IDLE_CPU))]
        yield "host_cpu_cores", "gauge", [(w, const(1)), (i, const(4))]
        yield "host_load5", "gauge", [(w, [2 * busy(t) for t in self.times]), (i, const(0.1))]
        yield "host_memory_total_bytes", "gauge", [(w, const(MEM_TOTAL)), (i, const(MEM_TOTAL))]
        yield "host_memory_available_bytes", "gauge", [(w, const(MEM_TOTAL * (1 - WEB_MEM_USED))), (i, const(MEM_TOTAL * (1 - IDLE_MEM_USED)))]
        yield "host_swap_total_bytes", "gauge", [(w, const(WEB_SWAP_TOTAL)), (i, const(0))]
        yield "host_swap_used_bytes", "gauge", [(w, const(WEB_SWAP_TOTAL * WEB_SWAP_USED)), (i, const(0))]
        data = {**w, "device": "/dev/sdb1", "fstype": "ext4", "mountpoint": "/data"}
        root_w = {**w, "device": "/dev/sda1", "fstype": "ext4", "mountpoint": "/"}
        root_i = {**i, "device": "/dev/vda1", "fstype": "xfs", "mountpoint": "/"}
        avail = [data_avail(t, self.start, self.noise[k]) for k, t in enumerate(self.times)]
        yield "host_filesystem_size_bytes", "gauge", [(data, const(DATA_SIZE)), (root_w, const(ROOT_SIZE)), (root_i, const(ROOT_SIZE))]
        yield "host_filesystem_avail_bytes", "gauge", [(data, avail), (root_w, const(ROOT_AVAIL)), (root_i, const(ROOT_AVAIL))]
        yield "host_filesystem_usage_ratio", "gauge", [
            (data, [1 - a / DATA_SIZE for a in avail]),
            (root_w, const(1 - ROOT_AVAIL / ROOT_SIZE)),
            (root_i, const(1 - ROOT_AVAIL / ROOT_SIZE)),
        ]
        yield "host_network_receive_bytes", "counter", [
            ({**w, "device": "eth0"}, self.counter(rx_rate)),
            ({**w, "device": "lo"}, self.counter(lambda t: 9e9)),
            ({**i, "device": "eth0"}, self.counter(lambda t: 1000.0)),
        ]
        yield "host_network_transmit_bytes", "counter", [
            ({**w, "device": "eth0"}, self.counter(lambda t: TX)),
            ({**w, "device": "lo"}, self.counter(lambda t: 9e9)),
            ({**i, "device": "eth0"}, self.counter(lambda t: 1000.0)),
        ]
        yield "host_pressure_cpu_waiting_seconds", "counter", [(w, self.counter(lambda t: 0.05 if busy(t) == BUSY else 0.01))]
        yield "host_process_group_cpu_seconds", "counter", [
            ({**w, "group": g, "mode": mode}, self.counter(lambda t, r=share * part: r if busy(t) == BUSY else r / 10)) for g, share in GROUPS.items() for mode, part in MODES.items()
        ]
        yield "host_process_group_resident_memory_bytes", "gauge", [({**w, "group": g}, const(GROUP_RSS[g])) for g in GROUPS]
        hosts = {WEB: w, IDLE: i}
        yield "host_cgroup_cpu_seconds", "counter", [
            ({**hosts[h], "cgroup": c, "mode": mode}, self.counter(lambda t, r=cores * part: r if busy(t) == BUSY else r / 10))
            for h, cgroups in CGROUPS.items() for c, (cores, _, _) in cgroups.items() for mode, part in MODES.items()
        ]
        yield "host_cgroup_memory_bytes", "gauge", [
            ({**hosts[h], "cgroup": c}, [high if busy(t) == BUSY else low for t in self.times]) for h, cgroups in CGROUPS.items() for c, (_, low, high) in cgroups.items()
        ]

    def alert_samples(self) -> Iterator[Tuple[str, str, str, float]]:
        """(family, labels text, value text, timestamp) of ALERTS and ALERTS_FOR_STATE."""
        for inc in incidents():
            base = {"alertname": inc.alertname, "alertstate": "firing", **_where(inc), "severity": inc.severity, **dict(inc.labels)}
            t0 = self.start + inc.start
            for k in range(int(inc.duration // ALERT_STEP)):
                yield "ALERTS", _labels(base), "1", t0 + k * ALERT_STEP
        for inc in incidents():
            base = {"alertname": inc.alertname, **_where(inc), "severity": inc.severity, **dict(inc.labels)}
            t0 = self.start + inc.start
            for k in range(int(inc.duration // ALERT_STEP)):
                yield "ALERTS_FOR_STATE", _labels(base), _num(t0 - 300), t0 + k * ALERT_STEP

    def openmetrics(self, lo: float, hi: float) -> Iterator[str]:
        """The samples with lo <= t < hi. promtool reads its whole input once
        per 2-hour block it writes, so the tests feed it a day at a time."""
        for name, kind, series in self.families():
            yield f"# TYPE {name} {kind}"
            sample = name + "_total" if kind == "counter" else name
            first = bisect.bisect_left(self.times, lo)
            last = bisect.bisect_left(self.times, hi)
            for labels, values in series:
                lab = _labels(labels)
                for k in range(first, last):
                    yield f"{sample}{lab} {_num(values[k])} {_num(self.times[k])}"
        declared = set()
        for family, lab, value, t in self.alert_samples():
            if lo <= t < hi:
                if family not in declared:
                    declared.add(family)
                    yield f"# TYPE {family} gauge"
                yield f"{family}{lab} {value} {_num(t)}"
        yield "# EOF"

    def days(self) -> Iterator[Tuple[float, float]]:
        """[lo, hi) one day at a time, covering every sample."""
        lo = self.start
        while lo <= self.end:
            yield lo, lo + DAY
            lo += DAY

    def values(self, family: str, **match: str) -> List[Tuple[float, float]]:
        """(t, value) of the one series of ``family`` whose labels include ``match``."""
        for name, _, series in self.families():
            if name == family:
                found = [vals for labels, vals in series if all(labels.get(k) == v for k, v in match.items())]
                assert len(found) == 1, (family, match, len(found))
                return list(zip(self.times, found[0]))
        raise KeyError(family)


# --------------------------------------------------------------------------
# An hour of history, as a Prometheus started an hour ago holds: the report's
# default range (30 days) is then almost all without data.

YOUNG = "young-1:9100"
YOUNG_SPAN = 3600
YOUNG_STEP = 15  # the shipped scrape interval
YOUNG_CORES = 2
YOUNG_QUIET, YOUNG_BUSY = 0.30, 0.70  # share of CPU busy: the first half hour, then the second
# Cores each process group used all the hour, user and system together;
# ``other`` (what the agent sums) used more than nginx and less than postgres.
YOUNG_GROUPS = {"postgres": 0.5, "other": 0.2, "nginx": 0.1}


class YoungHistory:
    """One host's hour of samples ending at ``end``."""

    def __init__(self, end: float):
        self.end = float(end)
        self.start = self.end - YOUNG_SPAN
        self.times = [self.start + k * YOUNG_STEP for k in range(YOUNG_SPAN // YOUNG_STEP + 1)]

    def busy(self, t: float) -> float:
        return YOUNG_QUIET if t < self.start + YOUNG_SPAN / 2 else YOUNG_BUSY

    def counter(self, rate: Callable[[float], float]) -> List[float]:
        return cumulative(self.times, rate, 5000.0)

    def openmetrics(self) -> Iterator[str]:
        h = {"instance": YOUNG, "job": JOB}
        n = len(self.times)
        families = {
            ("host_cpu_seconds", "counter"): [
                ({**h, "cpu": str(c), "mode": mode}, self.counter(lambda t, busy=busy: self.busy(t) if busy else 1 - self.busy(t)))
                for c in range(YOUNG_CORES) for mode, busy in (("idle", False), ("user", True))
            ],
            ("host_cpu_cores", "gauge"): [(h, [float(YOUNG_CORES)] * n)],
            ("host_memory_total_bytes", "gauge"): [(h, [MEM_TOTAL] * n)],
            ("host_memory_available_bytes", "gauge"): [(h, [MEM_TOTAL / 2] * n)],
            ("host_process_group_cpu_seconds", "counter"): [
                ({**h, "group": g, "mode": mode}, self.counter(lambda t, r=cores * part: r)) for g, cores in YOUNG_GROUPS.items() for mode, part in MODES.items()
            ],
            ("host_process_group_resident_memory_bytes", "gauge"): [({**h, "group": g}, [GIB] * n) for g in YOUNG_GROUPS],
        }
        for (name, kind), series in families.items():
            yield f"# TYPE {name} {kind}"
            sample = name + "_total" if kind == "counter" else name
            for labels, values in series:
                lab = _labels(labels)
                for t, v in zip(self.times, values):
                    yield f"{sample}{lab} {_num(v)} {_num(t)}"
        yield "# EOF"
